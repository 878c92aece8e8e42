/**
 * What a pass checks before it sends anything to an instance. An installer run with a token the runtime does not
 * have, or that would refuse the instance, ends as "installed but did not join" minutes later, after a command
 * reached every instance; a custom SSM document missing in a region fails every SendCommand there. Both are
 * known before sending: the token here, for every cloud, and the cloud's own checks through its `preflight`.
 * Nothing is sent to a refused instance; its reason names the token (or document), the account and the fix.
 */
import type { AllowProblem } from "../clouds/plugin";
import type { Token } from "../model";
import type { EnrollmentBackend } from "./backend";
import type { FailureClass } from "./clouds";
import type { Candidate, InstallOutcome } from "./types";

/** The failure classes of the pass's own checks: none of them sent a command. */
export const PREFLIGHT_FAILURE_CLASSES: Record<"join-token-missing" | "join-token-not-allowed", FailureClass> = {
  "join-token-missing": { commandSent: false, summary: "the matcher's join token does not exist in the runtime" },
  "join-token-not-allowed": {
    commandSent: false,
    summary: "the join token would refuse the instance: another join method, expired, or no allow rule for it",
  },
};

/** A join method as a pass sees it: whether a token's allow rules can admit an instance (see CloudJoinMethod). */
export interface AllowCheck {
  allowProblem?(token: Token, instance: { account: string; region: string }): AllowProblem | undefined;
}

/** The join parameters every cloud's matcher carries (`install.join_params`, defaults applied by the model). */
interface JoinParams {
  token_name: string;
  method: string;
}

/** The join parameters of a matcher, or undefined for one without (test fakes). */
export function joinParamsOf(matcher: unknown): JoinParams | undefined {
  const p = (matcher as { install?: { join_params?: Partial<JoinParams> } } | undefined)?.install?.join_params;
  return typeof p?.token_name === "string" && typeof p.method === "string"
    ? { token_name: p.token_name, method: p.method }
    : undefined;
}

/** Said in every fix of a check made before sending. */
export const NOTHING_SENT = "nothing was sent to the instance; the next pass checks again";

/** How a reason names the token: a token-method token's name is its secret and is never written down. */
export function tokenLabel(p: JoinParams): string {
  return p.method === "token"
    ? "the token-method join token named in install.join_params.token_name (its name is a secret)"
    : `join token ${JSON.stringify(p.token_name)}`;
}

/**
 * Why the matcher's token would refuse candidate `c`, as a failed outcome, or undefined when it may admit it.
 * `token` is what the runtime holds under the matcher's token name (undefined: nothing).
 */
export function tokenProblem(
  p: JoinParams,
  token: Token | undefined,
  c: Candidate,
  method: AllowCheck | undefined,
  now: Date,
): InstallOutcome | undefined {
  const where = `instance ${c.instanceId} of ${c.cloud} account ${c.account} (${c.region})`;
  const name = tokenLabel(p);
  const refuse = (failureClass: keyof typeof PREFLIGHT_FAILURE_CLASSES, reason: string, fix: string) => ({
    instanceId: c.instanceId,
    account: c.account,
    region: c.region,
    status: "failed" as const,
    failureClass,
    reason,
    remediation: `${fix}; ${NOTHING_SENT}`,
  });
  if (!token)
    return refuse(
      "join-token-missing",
      `${name} does not exist in the runtime, so ${where} could not join`,
      `create it (\`discovery apply -f token.yaml\`: kind token, join_method ${p.method}, an allow rule for ` +
        `${c.account}), or name an existing token in the matcher's install.join_params.token_name`,
    );
  if (token.spec.join_method !== p.method)
    return refuse(
      "join-token-not-allowed",
      `${name} has join_method ${token.spec.join_method}, but the matcher joins ${where} with ${p.method}`,
      `set the matcher's install.join_params.method to ${token.spec.join_method}, or name a token of join_method ` +
        `${p.method}`,
    );
  const expires = token.metadata.expires;
  if (expires && Date.parse(expires) <= now.getTime())
    return refuse(
      "join-token-not-allowed",
      `${name} expired at ${expires}, so ${where} could not join`,
      `apply the token again with a later metadata.expires (or none)`,
    );
  const problem = method?.allowProblem?.(token, c);
  return problem && refuse("join-token-not-allowed", problem.reason, problem.fix);
}

/** The pass's token checks: one lookup per token name and method in a pass, whatever the number of instances. */
export function tokenChecks(backend: EnrollmentBackend, methods: (name: string) => AllowCheck | undefined) {
  const tokens = new Map<string, Promise<Token | undefined>>();
  return async (matcher: unknown, candidates: Candidate[], now: Date): Promise<InstallOutcome[]> => {
    const p = joinParamsOf(matcher);
    if (!p || candidates.length === 0) return [];
    const key = `${p.method}\n${p.token_name}`;
    let lookup = tokens.get(key);
    if (!lookup) tokens.set(key, (lookup = backend.token(p.token_name, p.method)));
    const token = await lookup;
    return candidates.flatMap((c) => tokenProblem(p, token, c, methods(p.method), now) ?? []);
  };
}
