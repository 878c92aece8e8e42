/**
 * A discovery_config's status when the replicas of its group split its scopes (scope-leases.ts): each replica
 * records, per scope it listed, what it found there (ConfigScopeStore), and the status a user reads is the sum
 * over the config's scopes whose rows are fresh (store/config-scope-sql.ts, statusOverScopes). A row stays fresh
 * for three poll intervals after its pass (the lease TTL and one interval more, in which another replica takes over
 * the scopes of one that died), and again for as long when its holder's next pass over the config begins; so a
 * scope nobody lists any more stops counting, and one replica's scope error is not overwritten by another's pass.
 */
import type { PassResult } from "../enroll/pass";
import type { ScopeReport } from "../enroll/types";
import { FAILED_PASS, MAX_STATUS_ERROR } from "./store/config-scope-sql";
import type { ConfigScopeRef, ConfigScopeStatus } from "./store/types";
import { scopeProblem } from "./tasks";

/** How long a scope row counts after its pass, for a loop polling every `pollMs` (see the module comment). */
export const scopeStatusTtlMs = (pollMs: number): number => 3 * pollMs;

/** Who wrote a row, when, and until when it counts. */
export interface ScopeRowStamp {
  config: string;
  holder: string;
  at: Date;
  freshUntil: Date;
}

const keyOf = (s: ConfigScopeRef) => `${s.cloud}/${s.account}/${s.region}`;

/** A failed scope's line in error_message, with its fix. */
function errorLine(s: ScopeReport & { error: { code: string; message: string } }): string {
  const fix = scopeProblem({ cloud: s.cloud, ...s.error }).fix;
  return `${s.cloud} ${s.account}/${s.region}: ${s.error.code}: ${s.error.message}. ${fix}`;
}

/**
 * One pass's rows: a row per scope it listed (each instance counted in its own scope, or in its account's `*`
 * scope where a whole project or subscription is listed at once), and every scope it reported (listed, or left to
 * another replica), which the store keeps rows of.
 */
export function configScopesOf(
  result: PassResult,
  stamp: ScopeRowStamp,
): { rows: ConfigScopeStatus[]; reported: ConfigScopeRef[] } {
  const rows = new Map<string, ConfigScopeStatus>();
  const errors = new Map<string, string[]>();
  const row = (s: ConfigScopeRef) => {
    let r = rows.get(keyOf(s));
    if (!r) {
      r = {
        ...{ config: stamp.config, cloud: s.cloud, account: s.account, region: s.region },
        ...{ found: 0, enrolled: 0, failed: 0, error: "", holder: stamp.holder, position: rows.size },
        ...{ lastSync: stamp.at.toISOString(), freshUntil: stamp.freshUntil.toISOString() },
      };
      rows.set(keyOf(s), r);
    }
    return r;
  };
  for (const s of result.scopes) {
    if (s.held) continue;
    row(s);
    if (s.error) errors.set(keyOf(s), [...(errors.get(keyOf(s)) ?? []), errorLine({ ...s, error: s.error })]);
  }
  for (const [k, lines] of errors) rows.get(k)!.error = lines.join("; ");
  const is = (i: PassResult["instances"][number], ...st: string[]) => st.includes(i.status);
  for (const i of result.instances) {
    const whole = { cloud: i.cloud, account: i.account, region: "*" };
    const r = rows.get(keyOf(i)) ?? rows.get(keyOf(whole)) ?? row(i);
    r.found++;
    if (is(i, "enrolled", "already_enrolled")) r.enrolled++;
    // An instance backing off after a failure is still failing, though this pass left it alone.
    if (is(i, "failed") || (is(i, "skipped") && !!i.failure_class)) r.failed++;
  }
  return { rows: [...rows.values()], reported: result.scopes };
}

/** The row that says a replica's whole pass over the config failed (a store error, not one scope's). */
export function failedPassRow(err: unknown, stamp: ScopeRowStamp): ConfigScopeStatus {
  return {
    ...{ config: stamp.config, cloud: FAILED_PASS, account: stamp.holder, region: "*" },
    ...{ found: 0, enrolled: 0, failed: 0, holder: stamp.holder, position: -1 },
    error: String((err as Error)?.message ?? err).slice(0, MAX_STATUS_ERROR),
    ...{ lastSync: stamp.at.toISOString(), freshUntil: stamp.freshUntil.toISOString() },
  };
}
