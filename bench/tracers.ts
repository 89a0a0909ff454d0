/**
 * Tracers bench/run.ts attaches for the measured window only:
 *
 * - `--strace DIR`: `strace -c` of the server (it slows the server down several times);
 * - `--perf DIR`: `perf record -g` of the server and of each generator, one file per process
 *   (`<trial>.server.data`, `<trial>.gen0.data`, …). Read one with
 *   `perf report -i FILE --no-children --sort dso,sym`; JavaScript frames are named only when the
 *   process ran with `--v8-flags=--perf-basic-prof`, else they show as one anonymous dso;
 * - `--syscalls DIR`: `perf stat` of the socket system calls of the server and of each generator,
 *   counted by kernel tracepoints (`<trial>.server.txt`, …), which costs the processes next to
 *   nothing: how many reads and writes a delivery takes on each side.
 *
 * @module
 */

/** Where each tracer writes; "" leaves it off. */
export interface TracerOptions {
  strace: string;
  perf: string;
  syscalls: string;
}

/** The system calls `--syscalls` counts: socket reads and writes, and the waits between them. */
const SYSCALLS = ["recvfrom", "sendto", "read", "write", "writev", "epoll_wait"]
  .map((name) => `syscalls:sys_enter_${name}`).join(",");

/** Starts the tracers `options` asks for on `serverPid` (and, but for strace, on `genPids`). */
export async function startTracers(
  options: TracerOptions,
  trial: string,
  serverPid: number,
  genPids: number[],
): Promise<Deno.ChildProcess[]> {
  const commands: [string, string[]][] = [];
  if (options.strace) {
    await Deno.mkdir(options.strace, { recursive: true });
    const out = `${options.strace}/${trial}.txt`;
    commands.push(["strace", ["-c", "-f", "-p", String(serverPid), "-o", out]]);
  }
  const processes = [["server", serverPid], ...genPids.map((pid, i) => [`gen${i}`, pid])];
  for (const [role, pid] of processes) {
    if (options.perf) {
      await Deno.mkdir(options.perf, { recursive: true });
      const out = `${options.perf}/${trial}.${role}.data`;
      commands.push(["perf", ["record", "-g", "-F", "499", "-p", String(pid), "-o", out]]);
    }
    if (options.syscalls) {
      await Deno.mkdir(options.syscalls, { recursive: true });
      const out = `${options.syscalls}/${trial}.${role}.txt`;
      commands.push(["perf", ["stat", "-e", SYSCALLS, "-p", String(pid), "-o", out]]);
    }
  }
  return commands.map(([program, args]) =>
    new Deno.Command(program, { args, stdout: "null", stderr: "null" }).spawn()
  );
}

/** Stops the tracers: SIGINT lets them write their summary, SIGKILL is for a trial that failed. */
export async function stopTracers(
  tracers: Deno.ChildProcess[],
  signal: "SIGINT" | "SIGKILL",
): Promise<void> {
  for (const tracer of tracers) {
    try {
      Deno.kill(tracer.pid, signal);
    } catch { /* gone */ }
  }
  await Promise.all(tracers.map((t) => t.status));
}
