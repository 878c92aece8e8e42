import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { JOIN_METHODS } from "../model";
import type { PassResult } from "../enroll/pass";
import type { JoinEvent } from "../join/service";
import type { Store } from "./store/types";

/**
 * The `method` label of a join event. The method is whatever the client sent (any string up to 32 characters), so
 * every value outside the fixed list counts as one `invalid`: a caller must not be able to add series to /metrics.
 * The other labels are fixed in code: `result` from the event type, `reason` from refusal codes, which are all
 * string literals where the refusal is thrown.
 */
export function methodLabel(method: string | undefined): string {
  if (method === undefined) return "unknown";
  return (JOIN_METHODS as readonly string[]).includes(method) ? method : "invalid";
}

/** The runtime's Prometheus metrics, in a registry of its own (several runtimes may share a process in tests). */
export class RuntimeMetrics {
  readonly registry = new Registry();
  private readonly joins: Counter<"method" | "result" | "reason">;
  private readonly deleted: Counter<"table">;
  private readonly passDuration: Histogram<"result">;
  private readonly passInstances: Counter<"cloud" | "status" | "failure_class">;
  private readonly commandsSent: Counter<"cloud">;
  private readonly apiRetries: Counter<"cloud" | "phase">;
  private readonly leasesHeld: Gauge<"cloud">;

  /** Metrics whose node count is read from `store` at scrape time. */
  constructor(store: Store) {
    collectDefaultMetrics({ register: this.registry, prefix: "discovery_process_" });
    this.joins = new Counter({
      name: "discovery_join_requests_total",
      help: "Join and challenge requests by method and result; refusals carry their reason code.",
      labelNames: ["method", "result", "reason"],
      registers: [this.registry],
    });
    this.deleted = new Counter({
      name: "discovery_housekeeping_deleted_total",
      help: "Rows deleted by housekeeping: expired challenges, audit events past their retention.",
      labelNames: ["table"],
      registers: [this.registry],
    });
    for (const table of ["challenges", "audit_events"]) this.deleted.inc({ table }, 0);
    // Pass series: every label value is fixed in code (clouds, statuses, failure classes), never a config's name.
    this.passDuration = new Histogram({
      name: "discovery_pass_duration_seconds",
      help: "Enrollment passes of the discovery loop by result (completed, error: the pass threw), in seconds.",
      labelNames: ["result"],
      buckets: [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800],
      registers: [this.registry],
    });
    this.passInstances = new Counter({
      name: "discovery_pass_instances_total",
      help:
        "Instances seen by passes, by cloud, outcome (enrolled, already_enrolled, failed, skipped) and failure " +
        "class (empty when none; a skipped instance with a class is backing off after that failure).",
      labelNames: ["cloud", "status", "failure_class"],
      registers: [this.registry],
    });
    this.commandsSent = new Counter({
      name: "discovery_pass_commands_sent_total",
      help: "Install commands that reached an instance (SSM SendCommand, SSH, Run Command), by cloud.",
      labelNames: ["cloud"],
      registers: [this.registry],
    });
    this.apiRetries = new Counter({
      name: "discovery_pass_api_retries_total",
      help: "Cloud API calls of passes retried after throttling (or a server error), by cloud and phase (fetch, install).",
      labelNames: ["cloud", "phase"],
      registers: [this.registry],
    });
    this.leasesHeld = new Gauge({
      name: "discovery_scope_leases_held",
      help:
        "Scopes (account × region, project × zone, subscription) this replica lists for its discovery group under a " +
        "lease, by cloud, as of its last round; the other replicas of the group skip them.",
      labelNames: ["cloud"],
      registers: [this.registry],
    });
    new Gauge({
      name: "discovery_nodes",
      help: "Nodes that have joined.",
      registers: [this.registry],
      async collect() {
        this.set((await store.listNodes()).length);
      },
    });
  }

  /** Counts one join event. */
  joinEvent(e: JoinEvent): void {
    const result = e.type.split(".")[1] ?? e.type;
    this.joins.inc({
      method: methodLabel(e.method),
      result: `${e.type.split(".")[0]}_${result}`,
      reason: e.code ?? "",
    });
  }

  /** Counts one pass of the discovery loop; `result` undefined: the pass threw after `seconds`. */
  passFinished(result: PassResult | undefined, seconds: number): void {
    this.passDuration.observe({ result: result ? "completed" : "error" }, seconds);
    if (!result) return;
    for (const i of result.instances)
      this.passInstances.inc({ cloud: i.cloud, status: i.status, failure_class: i.failure_class ?? "" });
    for (const [cloud, s] of Object.entries(result.clouds)) {
      this.commandsSent.inc({ cloud }, s.commandsSent);
      for (const phase of ["fetch", "install"] as const) this.apiRetries.inc({ cloud, phase }, s.retries[phase]);
    }
  }

  /** The scope leases this replica holds after a round of passes, by cloud. */
  scopeLeasesHeld(byCloud: Record<string, number>): void {
    for (const [cloud, n] of Object.entries(byCloud)) this.leasesHeld.set({ cloud }, n);
  }

  /** Counts rows housekeeping deleted from `table`. */
  housekeepingDeleted(table: "challenges" | "audit_events", count: number): void {
    this.deleted.inc({ table }, count);
  }

  /** The Content-Type of the exposition format. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The metrics in Prometheus text format. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
