import { Command } from "commander";
import { answerError, request } from "../http/client";
import { target, withTarget } from "./admin";

/**
 * `discovery retry-failed`: the runtime's discovery loop starts a pass now that installs on failed instances
 * without waiting out their backoff (`POST /v1/enrollments/retry`). A pass run by `discovery enroll` takes
 * `--retry-failed` instead.
 */
export function retryFailedCommand(): Command {
  return withTarget(new Command("retry-failed"))
    .description("make the runtime's discovery loop retry failed instances now instead of waiting out their backoff")
    .action(async (opts) => {
      const t = target(opts);
      const a = await request(t, "POST", "/v1/enrollments/retry", {});
      if (a.status !== 202) throw new Error(answerError(a, t));
      const r = a.body as { pass: "started" | "queued"; backing_off: number };
      const when = r.pass === "started" ? "a pass started" : "a pass will start once the one in progress ends";
      process.stdout.write(
        `${when}: it retries the failed instances its matchers still select (${r.backing_off} backing off now); ` +
          "`discovery get tasks` shows what still fails\n",
      );
    });
}
