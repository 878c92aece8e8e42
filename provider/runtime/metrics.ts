import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { JOIN_METHODS } from "../model";
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
