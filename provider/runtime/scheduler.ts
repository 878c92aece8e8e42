import type { Logger } from "pino";
import type { DiscoveryServiceSection } from "../model";
import { parseDuration } from "../model";
import { storeBackend } from "../enroll/backend";
import { PassResult, runEnrollmentPass } from "../enroll/pass";
import type { RuntimeEndpoint } from "../enroll/types";
import type { Store } from "./store/types";

/** The runtime's own discovery loop: one enrollment pass every poll_interval, never two at once. */
export class DiscoveryScheduler {
  private timer?: NodeJS.Timeout;
  private running?: Promise<PassResult | undefined>;
  private stopped = false;
  /** The result of the last finished pass. */
  last?: PassResult;

  /** A loop over `section`'s matchers; passes record into `store`. */
  constructor(
    private readonly section: DiscoveryServiceSection,
    private readonly store: Store,
    private readonly endpoint: RuntimeEndpoint,
    private readonly logger: Logger,
  ) {}

  /** Starts the loop: a first pass at once, then one every poll_interval. */
  start(): void {
    const every = parseDuration(this.section.poll_interval) ?? 300_000;
    const tick = () => {
      void this.runNow().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, every);
      });
    };
    tick();
  }

  /** Runs a pass now, or joins the one in progress. */
  runNow(): Promise<PassResult | undefined> {
    this.running ??= runEnrollmentPass({
      matchers: this.section,
      backend: storeBackend(this.store),
      runtime: this.endpoint,
      staleNodeGraceMs: parseDuration(this.section.stale_node_grace),
      onProgress: (e) => this.logger.debug({ progress: e }, "discovery progress"),
    })
      .then((r) => {
        this.last = r;
        const counts: Record<string, number> = {};
        for (const i of r.instances) counts[i.status] = (counts[i.status] ?? 0) + 1;
        this.logger.info({ counts, scopes: r.scopes.length, commands: r.commandsSent }, "discovery pass finished");
        return r;
      })
      .catch((err) => {
        this.logger.error({ err }, "discovery pass failed");
        return undefined;
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }

  /** Stops the loop and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
