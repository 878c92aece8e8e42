/**
 * The benchmark control plane (bench/control-plane.ts) in a child process of its own, so that a bench's figures of
 * CPU time (process.cpuUsage) are its client's alone and the plane's answers run on the other core. The parent talks
 * to it over the fork's IPC channel.
 */
import { ChildProcess, fork } from "child_process";
import type { AddInstancesOptions, ControlPlaneOptions, ControlPlaneStats } from "./control-plane";
import type { InstanceAnswers } from "./control-plane-ec2";
import { startControlPlane } from "./control-plane";

/** A control plane in a child process: as ControlPlane, with every method asynchronous. */
export interface RemoteControlPlane {
  endpoint: string;
  account: string;
  addInstances(region: string, count: number, opts?: AddInstancesOptions): Promise<string[]>;
  addGceVms(project: string, zone: string, count: number, labels?: Record<string, string>): Promise<string[]>;
  stats(): Promise<ControlPlaneStats>;
  reset(answers?: InstanceAnswers): Promise<void>;
  close(): Promise<void>;
}

type Request = { id: number; op: "add" | "addGce" | "stats" | "reset"; args?: unknown[] };
type Reply = { id: number; result?: unknown; error?: string };

/** Forks a child process running a control plane; resolves once it listens. */
export async function startControlPlaneProcess(opts: ControlPlaneOptions): Promise<RemoteControlPlane> {
  // The parent's execArgv carries tsx's loader (benches run under tsx), so the child can run this .ts file.
  const child: ChildProcess = fork(__filename, ["--serve", JSON.stringify(opts)], { stdio: ["ignore", "inherit", "inherit", "ipc"] }); // prettier-ignore
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let next = 0;
  const ready = new Promise<{ endpoint: string; account: string }>((resolve, reject) => {
    child.once("message", (m) => resolve(m as { endpoint: string; account: string }));
    child.once("exit", (code) => reject(new Error(`the control plane process exited with ${code} before listening`)));
  });
  const { endpoint, account } = await ready;
  child.on("message", (m) => {
    const r = m as Reply;
    const p = pending.get(r.id);
    pending.delete(r.id);
    if (r.error) p?.reject(new Error(r.error));
    else p?.resolve(r.result);
  });
  const ask = <T>(op: Request["op"], args?: unknown[]) =>
    new Promise<T>((resolve, reject) => {
      const id = ++next;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ id, op, args } satisfies Request);
    });
  return {
    endpoint,
    account,
    addInstances: (region, count, add) => ask("add", [region, count, add]),
    addGceVms: (project, zone, count, labels) => ask("addGce", [project, zone, count, labels]),
    stats: () => ask("stats"),
    reset: (answers) => ask("reset", [answers]),
    close: () =>
      new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill();
      }),
  };
}

/** The child's side: serve a control plane and answer the parent's requests. */
async function serve(opts: ControlPlaneOptions): Promise<void> {
  const cp = await startControlPlane(opts);
  process.on("message", (m) => {
    const { id, op, args = [] } = m as Request;
    try {
      const result =
        op === "addGce"
          ? cp.addGceVms(args[0] as string, args[1] as string, args[2] as number, (args[3] ?? undefined) as Record<string, string> | undefined) // prettier-ignore
          : op === "add"
            ? // an absent options argument arrives as null (IPC is JSON)
              cp.addInstances(
                args[0] as string,
                args[1] as number,
                (args[2] ?? undefined) as AddInstancesOptions | undefined,
              )
            : op === "stats"
              ? cp.stats()
              : cp.reset(args[0] as InstanceAnswers | undefined);
      process.send!({ id, result } satisfies Reply);
    } catch (err) {
      process.send!({ id, error: String(err) } satisfies Reply);
    }
  });
  process.on("disconnect", () => process.exit(0));
  process.send!({ endpoint: cp.endpoint, account: cp.account });
}

if (require.main === module && process.argv[2] === "--serve") {
  serve(JSON.parse(process.argv[3]) as ControlPlaneOptions).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
