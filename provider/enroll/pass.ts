import { randomBytes } from "crypto";
import { cloudEnrollment, cloudJoinMethods, nodeInstance } from "../clouds";
import { CLOUDS, type Cloud, type DiscoveryServiceSection } from "../model";
import type { EnrollmentRecord } from "../runtime/store/types";
import { EnrollmentBackend, KnownNode } from "./backend";
import { AcquireScope, CloudEnrollment, commandWasSent, EnrollContext, failureBacksOff } from "./clouds";
import { AllowCheck, tokenChecks } from "./preflight";
import { backoffMs, busyReason, Claimant, EnrollmentDetail, unfinishedAttempt } from "./rules";
import { REINSTALL } from "./reinstall";
import { reconcileStaleNodes, ScannedScopes, StaleReport } from "./stale";
import type { Candidate, InstallOutcome, RuntimeEndpoint, ScopeReport } from "./types";

/** The outcome of one instance in a pass, as `discovery enroll --json` prints it (SPEC §2). */
export interface InstanceResult {
  cloud: string;
  account: string;
  region: string;
  instance_id: string;
  node_name: string;
  status: "enrolled" | "already_enrolled" | "failed" | "skipped";
  reason?: string;
  failure_class?: string;
  remediation?: string;
  exit_code?: number;
  stderr_tail?: string;
}

/** Progress of a pass, for a terminal. */
export type ProgressEvent =
  | { type: "scope"; scope: ScopeReport }
  | { type: "install"; cloud: string; instances: number }
  | { type: "joined"; node: string; joined: number; waiting: number };

/** Everything a pass needs. */
export interface PassOptions {
  matchers: Pick<DiscoveryServiceSection, Cloud>;
  backend: EnrollmentBackend;
  runtime: RuntimeEndpoint;
  /** How long an installed instance may take to join before it is "installed but did not join". */
  joinTimeoutMs?: number;
  pollMs?: number;
  /** An install older than this is presumed dead and may be retried. */
  staleMs?: number;
  onProgress?: (e: ProgressEvent) => void;
  now?: () => Date;
  /** The clouds' fetchers and installers; default the registered ones (tests pass fakes). */
  clouds?: (name: string) => CloudEnrollment | undefined;
  /** Recorded with each claim so the join can label the node `discovery/discovered-by`. */
  discoveredBy?: string;
  /**
   * This start of the runtime (with `discoveredBy`, its id): recorded with each claim, so that after a crash the
   * restarted runtime takes its own dead claims over at once instead of waiting `staleMs`.
   */
  boot?: string;
  /** When set, nodes of terminated instances are marked stale, and removed after this long (see stale.ts). */
  staleNodeGraceMs?: number;
  /** Instances backing off after a failure are installed on now (`--retry-failed`, `POST /v1/enrollments/retry`). */
  retryFailed?: boolean;
  /**
   * Asked before each scope is listed (the runtime's scope leases): a scope another replica of the discovery group
   * holds is reported as held, not listed, and its nodes are neither checked for staleness nor touched.
   */
  acquireScope?: AcquireScope;
  /** The join methods whose allow rules the token check reads; default the registered ones (tests pass fakes). */
  joinMethods?: (name: string) => AllowCheck | undefined;
}

/** What a pass did in one cloud, for metrics. */
export interface CloudPassStats {
  commandsSent: number;
  /** Cloud API calls retried after throttling (or a server error), while listing and while installing. */
  retries: { fetch: number; install: number };
}

/** What a pass did. */
export interface PassResult {
  instances: InstanceResult[];
  scopes: ScopeReport[];
  commandsSent: number;
  /** Per cloud that had matchers: commands sent and retries. */
  clouds: Record<string, CloudPassStats>;
  /** What the stale-node check changed; absent when the pass did not check. */
  nodes?: StaleReport;
}

const only = (c: Candidate) => ({ instanceId: c.instanceId, account: c.account, region: c.region });
const key = (c: { cloud: string; account: string; region: string; instanceId: string }) =>
  `${c.cloud}/${c.account}/${c.region}/${c.instanceId}`;
/** An instance within one cloud's outcomes (which carry no cloud). */
const outcomeKey = (x: { account: string; region: string; instanceId: string }) =>
  `${x.account}/${x.region}/${x.instanceId}`;

/** The inventory's nodes, by name and by the instance their cloud's labels name (see isEnrolled). */
export function enrolledNodes(nodes: Pick<KnownNode, "name" | "labels">[]): Set<string> {
  const out = new Set<string>();
  for (const n of nodes) {
    out.add(`name:${n.name}`);
    const at = nodeInstance(n.labels);
    if (at?.instanceId) out.add(`id:${at.account}/${at.instanceId}`);
  }
  return out;
}

/** Whether a node in the inventory is this candidate: its account and instance labels, else its node name. */
export const isEnrolled = (set: Set<string>, c: Pick<Candidate, "nodeName" | "account" | "instanceId">) =>
  set.has(`name:${c.nodeName}`) || set.has(`id:${c.account}/${c.instanceId}`);

/**
 * One enrollment pass: matchers -> candidates -> skip what is enrolled, in flight or backing off -> install ->
 * wait for each installed instance to join -> record every instance's status and reason.
 */
export async function runEnrollmentPass(o: PassOptions): Promise<PassResult> {
  const now = o.now ?? (() => new Date());
  const staleMs = o.staleMs ?? 15 * 60_000;
  const stats: Record<string, CloudPassStats> = {};
  const statsOf = (cloud: string) => (stats[cloud] ??= { commandsSent: 0, retries: { fetch: 0, install: 0 } });
  const memo = new Map<string, Promise<unknown>>();
  const once = <T>(k: string, fn: () => Promise<T>): Promise<T> => {
    if (!memo.has(k)) memo.set(k, fn());
    return memo.get(k) as Promise<T>;
  };
  // One context per cloud and phase, so each retry is counted where it happened.
  const ctxOf = (cloud: string, phase: "fetch" | "install"): EnrollContext => ({
    runtime: o.runtime,
    onScope: (scope: ScopeReport) => o.onProgress?.({ type: "scope", scope }),
    onRetry: () => statsOf(cloud).retries[phase]++,
    once,
    ...(phase === "fetch" && o.acquireScope && { acquireScope: o.acquireScope }),
  });
  const registered = cloudJoinMethods();
  const checkTokens = tokenChecks(o.backend, o.joinMethods ?? ((name) => registered[name]));
  const scopes: ScopeReport[] = [];
  const work: { cloud: string; matcher: unknown; candidates: Candidate[] }[] = [];
  const seen = new Set<string>();
  const clouds = o.clouds ?? cloudEnrollment;
  const scanned: ScannedScopes = new Map();
  const running = new Set<string>();
  for (const cloud of CLOUDS) {
    const impl = clouds(cloud);
    if ((o.matchers[cloud] as unknown[]).length > 0) statsOf(cloud);
    for (const matcher of o.matchers[cloud] as unknown[]) {
      if (!impl) {
        scopes.push({
          cloud,
          account: "*",
          region: "*",
          instances: 0,
          error: { code: "cloud_unavailable", message: `${cloud} discovery is not available in this build` },
        });
        continue;
      }
      const fetched = await impl.fetch(matcher, ctxOf(cloud, "fetch"));
      scopes.push(...fetched.scopes);
      for (const sc of fetched.scopes)
        if (!sc.error && !sc.held && !scanned.has(`${sc.account}/${sc.region}`))
          scanned.set(`${sc.account}/${sc.region}`, { cloud, matcher });
      for (const c of fetched.candidates) running.add(`${c.account}/${c.instanceId}`);
      // An instance two matchers select is installed once, by the first.
      const mine = fetched.candidates.filter((c) => !seen.has(key(c)) && seen.add(key(c)));
      work.push({ cloud, matcher, candidates: mine });
    }
  }

  const enrolled = enrolledNodes(await o.backend.nodes());
  // Enrolled nodes an open CA rotation has not reached: their installer runs again (seed 000, Teleport's rotation).
  const rotating = await o.backend.rotationPending();
  const previous = new Map((await o.backend.enrollments()).map((e) => [key(e), e]));
  // This pass's install attempt: its commands name it, so a pass that takes an instance over can find them.
  const passAttempt = randomBytes(8).toString("hex");
  const self: Claimant | undefined =
    o.boot !== undefined && o.discoveredBy !== undefined ? { by: o.discoveredBy, boot: o.boot } : undefined;
  const results = new Map<string, InstanceResult>();
  const base = (c: Candidate) => ({
    cloud: c.cloud,
    account: c.account,
    region: c.region,
    instance_id: c.instanceId,
    node_name: c.nodeName,
  });
  const record = (c: Candidate, status: string, reason?: string, detail?: EnrollmentDetail) =>
    o.backend.record({
      cloud: c.cloud,
      account: c.account,
      region: c.region,
      instanceId: c.instanceId,
      nodeName: c.nodeName,
      status,
      reason,
      detail: detail as Record<string, unknown>,
      updatedAt: now().toISOString(),
    });

  let commandsSent = 0;
  const installed: { c: Candidate; outcome: InstallOutcome; startedAt: string }[] = [];
  for (const w of work) {
    const claimed: Candidate[] = [];
    for (const c of w.candidates) {
      if (isEnrolled(enrolled, c) && rotating.has(c.nodeName)) c.rotation = c.rejoin = true;
      else if (isEnrolled(enrolled, c)) {
        results.set(key(c), { ...base(c), status: "already_enrolled" });
        if (previous.get(key(c))?.status !== "enrolled") await record(c, "enrolled");
        continue;
      }
      const prev = previous.get(key(c));
      const prevDetail = (prev?.detail ?? {}) as EnrollmentDetail;
      if (prev?.status === REINSTALL || prevDetail.rejoin) c.rejoin = true;
      // An attempt whose command may exist is continued (and its command looked up), never started over.
      const unfinished = unfinishedAttempt(prev);
      c.attempt = unfinished ?? passAttempt;
      c.resume = unfinished !== undefined;
      const detail: EnrollmentDetail = {
        attempts: prevDetail.attempts ?? 0,
        attempt: c.attempt,
        ...(o.discoveredBy !== undefined && { discoveredBy: o.discoveredBy }),
        ...(o.boot !== undefined && { boot: o.boot }),
        // Kept through the install so a failure that repeats keeps the task's first_seen.
        ...(prev?.status === "failed" && { firstFailedAt: prevDetail.firstFailedAt ?? prev.updatedAt }),
        ...(c.rejoin && !c.rotation && { rejoin: true }),
        ...(c.rotation && { rotation: true }),
      };
      const claim: EnrollmentRecord = {
        cloud: c.cloud,
        account: c.account,
        region: c.region,
        instanceId: c.instanceId,
        nodeName: c.nodeName,
        status: "installing",
        detail: detail as Record<string, unknown>,
        updatedAt: now().toISOString(),
      };
      if (await o.backend.claim(claim, staleMs, { retryFailed: o.retryFailed, self })) {
        // The store may have found an unfinished attempt the snapshot above did not show (see storeBackend).
        const got = detail.attempt;
        if (got !== c.attempt) [c.attempt, c.resume] = [got, true];
        claimed.push(c);
      } else {
        const cur = (await o.backend.enrollments()).find((e) => key(e) === key(c));
        const curDetail = (cur?.detail ?? {}) as EnrollmentDetail;
        // Still failing, only not retried yet: noted as seen, so its task stays open while the instance exists.
        if (cur?.status === "failed")
          await o.backend.record({ ...cur, detail: { ...curDetail, lastSeenAt: now().toISOString() } });
        results.set(key(c), {
          ...base(c),
          status: "skipped",
          reason:
            busyReason(cur, now(), staleMs, { retryFailed: o.retryFailed, self }) ?? "another pass holds this instance",
          ...(cur?.status === "failed" && { failure_class: curDetail.failureClass }),
        });
      }
    }
    if (claimed.length === 0) continue;
    try {
      await installClaimed(w, claimed);
    } catch (err) {
      // Whatever broke (the store, a cloud's surprise), no claim is left to go stale: each is released as failed
      // with the cause, keeping its attempt (a command may have gone out) so the next pass looks before sending.
      const reason = `the pass failed while installing: ${(err as Error).message ?? String(err)}`;
      for (const c of claimed)
        if (!results.has(key(c)) && !installed.some((i) => i.c === c))
          await fail(
            c,
            { ...only(c), status: "failed", failureClass: "invocation-failure", attempt: c.attempt },
            reason,
            { backoff: false },
          );
    }
  }

  /** Checks, then installs on one matcher's claimed candidates; successes wait for their join below. */
  async function installClaimed(w: (typeof work)[number], claimed: Candidate[]) {
    const impl = clouds(w.cloud)!;
    const ctx = ctxOf(w.cloud, "install");
    // Checked before anything is sent: the token, then the cloud's own (AWS: the SSM document). Refusals cost the
    // instance nothing, so they do not back off: the pass after the fix installs.
    const refused = new Map((await checkTokens(w.matcher, claimed, now())).map((x) => [outcomeKey(x), x]));
    const checked = claimed.filter((c) => !refused.has(outcomeKey(c)));
    for (const x of (await impl.preflight?.(checked, w.matcher, ctx)) ?? []) refused.set(outcomeKey(x), x);
    for (const c of claimed) {
      const x = refused.get(outcomeKey(c));
      if (x) await fail(c, x, x.reason, { backoff: false });
    }
    const ready = claimed.filter((c) => !refused.has(outcomeKey(c)));
    if (ready.length === 0) return;
    o.onProgress?.({ type: "install", cloud: w.cloud, instances: ready.length });
    const startedAt = now().toISOString();
    const outcomes = await impl.install(ready, w.matcher, ctx);
    const byId = new Map(outcomes.map((x) => [outcomeKey(x), x]));
    for (const c of ready) {
      const outcome = byId.get(outcomeKey(c)) ?? {
        instanceId: c.instanceId,
        account: c.account,
        region: c.region,
        status: "failed",
        failureClass: "invocation-failure",
        reason: "the installer reported nothing for this instance",
      };
      if (commandWasSent(impl, outcome)) {
        commandsSent++;
        statsOf(w.cloud).commandsSent++;
      }
      if (outcome.status === "succeeded") installed.push({ c, outcome, startedAt });
      else await fail(c, outcome, undefined, { backoff: failureBacksOff(impl, outcome) });
    }
  }

  /** Records a failure; one that sent nothing (`backoff: false`) neither counts as an attempt nor backs off. */
  async function fail(
    c: Candidate,
    outcome: InstallOutcome,
    reason = outcome.reason ?? "the install failed",
    { backoff = true } = {},
  ) {
    const prev = previous.get(key(c));
    const prevDetail = prev?.detail as EnrollmentDetail | undefined;
    const attempts = (prevDetail?.attempts ?? 0) + (backoff ? 1 : 0);
    const at = now().toISOString();
    const detail: EnrollmentDetail = {
      attempts,
      ...(outcome.attempt && { attempt: outcome.attempt }),
      discoveredBy: o.discoveredBy,
      firstFailedAt: prev?.status === "failed" ? (prevDetail?.firstFailedAt ?? prev.updatedAt) : at,
      lastSeenAt: at,
      ...(backoff && { nextAttemptAt: new Date(now().getTime() + backoffMs(attempts)).toISOString() }),
      failureClass: outcome.failureClass,
      remediation: outcome.remediation,
      exitCode: outcome.exitCode,
      stderrTail: outcome.stderrTail,
      stdoutTail: outcome.stdoutTail,
      commandId: outcome.commandId,
      ...(c.rejoin && !c.rotation && { rejoin: true }),
    };
    await record(c, "failed", reason, detail);
    results.set(key(c), {
      ...base(c),
      status: "failed",
      reason,
      failure_class: outcome.failureClass,
      remediation: outcome.remediation,
      exit_code: outcome.exitCode,
      stderr_tail: outcome.stderrTail,
    });
  }

  // The loop is closed: an install that "succeeded" counts only once the node has joined.
  const deadline = now().getTime() + (o.joinTimeoutMs ?? 120_000);
  let waiting = installed;
  let joinedCount = 0;
  while (waiting.length > 0) {
    const known = await o.backend.nodes();
    const joined = enrolledNodes(known);
    const certified = new Map(known.map((n) => [n.name, n.certifiedAt ?? ""]));
    const still: typeof waiting = [];
    for (const w of waiting) {
      // A rotation's install counts once the node was certified again after it started, not merely exists (and
      // not by whether it matches the CAs now: a rotation completed meanwhile would make a done node look late).
      if (w.c.rotation ? (certified.get(w.c.nodeName) ?? "") >= w.startedAt : isEnrolled(joined, w.c)) {
        await record(w.c, "enrolled", undefined, {
          attempts: 0,
          commandId: w.outcome.commandId,
          discoveredBy: o.discoveredBy,
        });
        results.set(key(w.c), { ...base(w.c), status: "enrolled" });
        o.onProgress?.({
          type: "joined",
          node: w.c.nodeName,
          joined: ++joinedCount,
          waiting: installed.length - joinedCount,
        });
      } else still.push(w);
    }
    waiting = still;
    if (waiting.length === 0) break;
    if (now().getTime() >= deadline) {
      for (const w of waiting)
        await fail(
          w.c,
          {
            ...w.outcome,
            status: "failed",
            failureClass: "installed-not-joined",
            remediation: w.c.rotation
              ? "The installer ran again for the CA rotation but the node has no credentials from the new key: read its output below. An ec2 join proves nothing once the instance's identity document is older than aws_iid_ttl; use an iam token for long-lived agentless nodes, or reinstall them."
              : "The installer exited 0 but the node never called the join API: read its output below, check the node can reach the runtime's public address, and that the token allows this account and region.",
          },
          w.c.rotation
            ? "re-ran the installer for the CA rotation, but the node was not re-certified"
            : "installed but did not join",
        );
      break;
    }
    await new Promise((r) => setTimeout(r, o.pollMs ?? 1000));
  }
  const order = work.flatMap((w) => w.candidates).map(key);
  const nodes =
    o.staleNodeGraceMs === undefined
      ? undefined
      : await reconcileStaleNodes({
          backend: o.backend,
          scanned,
          running,
          graceMs: o.staleNodeGraceMs,
          now: now(),
          clouds,
        });
  return {
    instances: order.map((k) => results.get(k)!).filter(Boolean),
    scopes,
    commandsSent,
    clouds: stats,
    ...(nodes && { nodes }),
  };
}
