/**
 * The scenarios bench/run.ts runs: what each generator workload is called, sized and titled, and
 * which run over TLS (fan-out and many rooms, as they are over plain TCP).
 *
 * @module
 */

import type { GenScenario } from "./gen.ts";
import type { ScenarioName } from "./report.ts";
import { COST as COSTLY_HASH_COST } from "./users.ts";

/** A scenario of issue 4, or one of them over TLS. */
export interface Scenario {
  name: ScenarioName;
  /** What the generators play. */
  workload: GenScenario;
  /** Whether the server serves, and the generators connect with, TLS. */
  tls: boolean;
  title: string;
  clients: number;
  rooms: number;
}

/** Logins at once in the storm. */
export const STORM_LOGINS = 500;
/** The storm's paced clients: 100 in one room, as in the paced scenario. */
export const PACED_CLIENTS = 100;

/** Every scenario's name, in the order they run. */
export const SCENARIO_ORDER: ScenarioName[] = [
  "fanout",
  "rooms",
  "fanout-tls",
  "rooms-tls",
  "direct",
  "paced",
  "idle",
  "storm",
];

/** Every scenario, in the order they run; `idleConnections` sizes the idle one. */
export function allScenarios(idleConnections: number): Scenario[] {
  const fanout = { workload: "fanout", clients: 100, rooms: 1 } as const;
  const rooms = { workload: "rooms", clients: 1000, rooms: 100 } as const;
  const all: Scenario[] = [
    { name: "fanout", ...fanout, tls: false, title: "fan-out: 1 room × 100 clients" },
    { name: "rooms", ...rooms, tls: false, title: "many rooms: 1,000 clients in 100 rooms" },
    { name: "fanout-tls", ...fanout, tls: true, title: "fan-out over TLS: 1 room × 100 clients" },
    {
      name: "rooms-tls",
      ...rooms,
      tls: true,
      title: "many rooms over TLS: 1,000 clients in 100 rooms",
    },
    {
      name: "direct",
      workload: "direct",
      tls: false,
      title: "direct: 1,000 clients, 5 targets each",
      clients: 1000,
      rooms: 0,
    },
    {
      name: "paced",
      workload: "paced",
      tls: false,
      title: "paced: 100 clients × 20 msg/s, 1 room",
      clients: 100,
      rooms: 1,
    },
    {
      name: "idle",
      workload: "idle",
      tls: false,
      title: `idle: ${idleConnections.toLocaleString("en")} logged-in connections`,
      clients: idleConnections,
      rooms: 0,
    },
    {
      name: "storm",
      workload: "storm",
      tls: false,
      title: `login storm: ${STORM_LOGINS} logins during paced (Parley: distinct passwords, ` +
        `hash cost ${COSTLY_HASH_COST})`,
      clients: STORM_LOGINS,
      rooms: 0,
    },
  ];
  return all;
}

/** The paced clients the storm's logins run beside. */
export const STORM_PACED: Scenario = {
  name: "paced",
  workload: "paced",
  tls: false,
  title: "",
  clients: PACED_CLIENTS,
  rooms: 1,
};
