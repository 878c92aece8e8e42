import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { JoinEvent } from "../join/service";
import type { Store } from "./store/types";

/** The runtime's Prometheus metrics, in a registry of its own (several runtimes may share a process in tests). */
export class RuntimeMetrics {
  readonly registry = new Registry();
  private readonly joins: Counter<"method" | "result" | "reason">;

  /** Metrics whose node count is read from `store` at scrape time. */
  constructor(store: Store) {
    collectDefaultMetrics({ register: this.registry, prefix: "discovery_process_" });
    this.joins = new Counter({
      name: "discovery_join_requests_total",
      help: "Join and challenge requests by method and result; refusals carry their reason code.",
      labelNames: ["method", "result", "reason"],
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
      method: e.method ?? "unknown",
      result: `${e.type.split(".")[0]}_${result}`,
      reason: e.code ?? "",
    });
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
