/**
 * A benchmark control plane: a fast in-memory AWS for bench/ only (moto stays the control plane of tests). It speaks
 * the real wire protocols to the real SDK clients: STS (GetCallerIdentity, AssumeRole) and EC2 (DescribeInstances
 * with filters and pages, bench/control-plane-ec2.ts) in the Query protocol, SSM in JSON 1.1
 * (bench/control-plane-ssm.ts). It adds a configurable latency to every answer and enforces EC2's request token
 * buckets per account and region the way AWS does: an empty bucket answers 503 RequestLimitExceeded without waiting
 * for a token. An action it does not serve is a 400 naming it (and is logged), so nothing is silently faked.
 *
 * Accounts: the caller's own credentials belong to `account`; AssumeRole into `arn:aws:iam::<id>:role/<name>` returns
 * credentials whose access key belongs to `<id>`, so later calls with them count against that account's buckets.
 *
 * Buckets (FIELD-NOTES, "EC2 API token buckets"): DescribeInstances unfiltered and unpaginated (e.g. by InstanceIds)
 * draws from the unfiltered bucket (50, refill 10/s); with filters or MaxResults from the non-mutating one (100,
 * 20/s). STS and SSM publish no per-action bucket and are not throttled here.
 *
 * GCP: Compute Engine's instance listings and an OAuth token endpoint (bench/control-plane-compute.ts), with
 * Compute's per-project read quota per minute, on the same port: requests whose path starts with `/compute/v1/`,
 * and `POST /token`.
 */
import * as http from "http";
import type { AddressInfo } from "net";
import { BucketProfile, BucketRegistry, EC2_NON_MUTATING, EC2_UNFILTERED } from "../provider/clouds/aws/rate-limits";
import { describeInstances, ec2Error, esc, InstanceAnswers, instanceXml, isFilteredOrPaged, leanInstanceXml, PlaneAnswer, PlaneInstance } from "./control-plane-ec2"; // prettier-ignore
import { jsonError, PlaneSsm } from "./control-plane-ssm";
import { computePlane } from "./control-plane-compute";

/** How a control plane answers. */
export interface ControlPlaneOptions {
  /** Added to every answer, as AWS's ~50 ms per call. */
  latencyMs: number;
  /** Enforce EC2's buckets (default true). */
  buckets?: boolean;
  /** The account the callers' own credentials belong to (default 123456789012). */
  account?: string;
  /** DescribeInstances answers with every field AWS returns (default) or only those the fetcher reads. */
  answers?: InstanceAnswers;
  /**
   * Compute's read requests per project and minute (default 1,500); past it, 403 rateLimitExceeded until the next
   * minute. Google sets the value per project and quota group; raise it as a project's quota page shows.
   */
  gceReadsPerMinute?: number;
}

/** What the control plane was asked since the last reset. */
export interface ControlPlaneStats {
  /** Every request, throttled or not. */
  calls: number;
  throttled: number;
  /** Instance ids asked for by DescribeInstances (InstanceIds or an instance-id filter), in all calls. */
  idsAsked: number;
  /** Requests by `service:Action`. */
  byAction: Record<string, number>;
  /** Actions answered 400 because the plane does not serve them. */
  unknown: string[];
}

/** Where to add instances. */
export interface AddInstancesOptions {
  /** Default: the control plane's own account. */
  account?: string;
  tags?: Record<string, string>;
}

/** A running control plane. */
export interface ControlPlane {
  endpoint: string;
  /** The account of the callers' own credentials. */
  account: string;
  /** Makes `count` running instances in `region` (one reservation); their ids. */
  addInstances(region: string, count: number, opts?: AddInstancesOptions): string[];
  /** Makes `count` RUNNING Compute Engine VMs in a project's zone, with `labels`; their names. */
  addGceVms(project: string, zone: string, count: number, labels?: Record<string, string>): string[];
  stats(): ControlPlaneStats;
  /** Clears the stats, refills every bucket and quota; `answers` changes how DescribeInstances answers from now on. */
  reset(answers?: InstanceAnswers): void;
  close(): Promise<void>;
}

const STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/";
const stsOk = (action: string, result: string): PlaneAnswer => ({
  status: 200,
  body: `<${action}Response xmlns="${STS_NS}"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>bench</RequestId></ResponseMetadata></${action}Response>`, // prettier-ignore
});
const stsError = (code: string, message: string): PlaneAnswer => ({
  status: 400,
  body: `<ErrorResponse xmlns="${STS_NS}"><Error><Type>Sender</Type><Code>${code}</Code><Message>${esc(message)}</Message></Error><RequestId>bench</RequestId></ErrorResponse>`, // prettier-ignore
});

/** The caller's access key, region and service, from SigV4's `Credential=AKID/date/<region>/<service>/aws4_request`. */
function signedScope(authorization: string | undefined) {
  const m = /Credential=([^/]+)\/\d+\/([^/]+)\/([^/]+)\//.exec(authorization ?? "");
  return m ? { accessKey: m[1], region: m[2], service: m[3] } : undefined;
}

/** Starts the control plane on a loopback port. */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const account = opts.account ?? "123456789012";
  const byId = new Map<string, PlaneInstance>();
  const byScope = new Map<string, PlaneInstance[]>(); // `${account}/${region}` → instances, in launch order
  const keys = new Map<string, string>(); // access key from AssumeRole → its account
  const ssm = new PlaneSsm();
  const compute = computePlane({ readsPerMinute: opts.gceReadsPerMinute ?? 1500 });
  let buckets = new BucketRegistry();
  const fresh = (): ControlPlaneStats => ({ calls: 0, throttled: 0, idsAsked: 0, byAction: {}, unknown: [] });
  let stats = fresh();
  let serial = 0;
  let answers = opts.answers ?? "full";

  // The runtime's own bucket class, asked without waiting: AWS answers an empty bucket at once.
  const take = (scope: string, p: BucketProfile): boolean => {
    if (opts.buckets === false) return true;
    const bucket = buckets.get(scope, p);
    if (bucket.available() < 1) return false;
    void bucket.take(); // a token is there, so this does not wait
    return true;
  };

  const ec2 = (form: URLSearchParams, caller: string, region: string): PlaneAnswer | undefined => {
    if (form.get("Action") !== "DescribeInstances") return undefined;
    const ids = [...form.keys()].filter((k) => /^InstanceId\.\d+$/.test(k)).length;
    const filtered = isFilteredOrPaged(form);
    if (!take(`${caller}/${region}`, ids && !filtered ? EC2_UNFILTERED : EC2_NON_MUTATING)) {
      stats.throttled++;
      return ec2Error(503, "RequestLimitExceeded", "Request limit exceeded.");
    }
    const idFilter = [...form.entries()].find(([k, v]) => /^Filter\.\d+\.Name$/.test(k) && v === "instance-id");
    const prefix = idFilter?.[0].replace(/Name$/, "Value.");
    stats.idsAsked += ids + (prefix ? [...form.keys()].filter((k) => k.startsWith(prefix)).length : 0);
    return describeInstances(form, byScope.get(`${caller}/${region}`) ?? [], byId, caller, region, answers);
  };

  const sts = (form: URLSearchParams, caller: string): PlaneAnswer | undefined => {
    switch (form.get("Action")) {
      case "GetCallerIdentity":
        return stsOk(
          "GetCallerIdentity",
          `<Arn>arn:aws:iam::${caller}:user/bench</Arn><UserId>AIDABENCH</UserId><Account>${caller}</Account>`,
        );
      case "AssumeRole": {
        const arn = form.get("RoleArn") ?? "";
        const target = /^arn:aws:iam::(\d{12}):role\/[\w+=,.@/-]+$/.exec(arn)?.[1];
        if (!target) return stsError("ValidationError", `RoleArn ${arn} is not arn:aws:iam::<12 digits>:role/<name>`);
        const session = form.get("RoleSessionName") ?? "";
        if (!/^[\w+=,.@-]{2,64}$/.test(session)) return stsError("ValidationError", "RoleSessionName is invalid");
        const key = `ASIA${target}${(++serial).toString(16).padStart(4, "0")}`;
        keys.set(key, target);
        const expiration = new Date(Date.now() + 3600_000).toISOString();
        return stsOk(
          "AssumeRole",
          `<Credentials><AccessKeyId>${key}</AccessKeyId><SecretAccessKey>bench-secret</SecretAccessKey>` +
            `<SessionToken>bench-session-${key}</SessionToken><Expiration>${expiration}</Expiration></Credentials>` +
            `<AssumedRoleUser><AssumedRoleId>AROABENCH:${session}</AssumedRoleId>` +
            `<Arn>arn:aws:sts::${target}:assumed-role/${arn.split("/").pop()}/${session}</Arn></AssumedRoleUser>`,
        );
      }
      default:
        return undefined;
    }
  };

  const answer = (req: http.IncomingMessage, body: string): PlaneAnswer => {
    const scope = signedScope(req.headers.authorization);
    if (!scope) return ec2Error(400, "MissingAuthenticationToken", "requests must be signed with SigV4");
    const caller = keys.get(scope.accessKey) ?? account;
    const target = req.headers["x-amz-target"];
    if (typeof target === "string") {
      const action = target.replace(/^AmazonSSM\./, "");
      const key = `${scope.service}:${action}`;
      stats.byAction[key] = (stats.byAction[key] ?? 0) + 1;
      let input: Record<string, unknown>;
      try {
        input = JSON.parse(body || "{}");
      } catch {
        return jsonError("SerializationException", "the body is not JSON");
      }
      const a = scope.service === "ssm" ? ssm.answer(action, input, byId, caller, scope.region) : undefined;
      if (a) return a;
      stats.unknown.push(key);
      console.error(`bench control plane: ${key} is not served`);
      return jsonError("UnknownOperationException", `${key} is not served by the bench control plane`);
    }
    const form = new URLSearchParams(body);
    const key = `${scope.service}:${form.get("Action")}`;
    stats.byAction[key] = (stats.byAction[key] ?? 0) + 1;
    const a =
      scope.service === "ec2" ? ec2(form, caller, scope.region) : scope.service === "sts" ? sts(form, caller) : undefined; // prettier-ignore
    if (a) return a;
    stats.unknown.push(key);
    console.error(`bench control plane: ${key} is not served`);
    return scope.service === "sts"
      ? stsError("InvalidAction", `${key} is not served by the bench control plane`)
      : ec2Error(400, "InvalidAction", `${key} is not served by the bench control plane`);
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      stats.calls++;
      const url = new URL(req.url ?? "/", "http://bench");
      const google = url.pathname.startsWith("/compute/v1/") || url.pathname === "/token";
      const a = google
        ? compute.answer(req.method ?? "GET", url, req.headers.authorization, stats)
        : answer(req, Buffer.concat(chunks).toString());
      const type = google ? "application/json; charset=UTF-8" : a.body.startsWith("{") ? "application/x-amz-json-1.1" : "text/xml"; // prettier-ignore
      setTimeout(() => res.writeHead(a.status, { "content-type": type }).end(a.body), opts.latencyMs);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    account,
    addInstances(region, count, add = {}) {
      const owner = add.account ?? account;
      const scope = `${owner}/${region}`;
      const list = byScope.get(scope) ?? [];
      byScope.set(scope, list);
      const reservationId = `r-${(++serial).toString(16).padStart(17, "0")}`;
      const launchTime = new Date().toISOString();
      const ids: string[] = [];
      for (let k = 0; k < count; k++) {
        const n = byId.size + 1;
        const id = `i-${n.toString(16).padStart(17, "0")}`;
        const base = {
          id,
          account: owner,
          region,
          reservationId,
          privateIp: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
          tags: add.tags ?? {},
          launchTime,
        };
        const i = { ...base, xml: instanceXml(base), leanXml: leanInstanceXml(base) };
        byId.set(id, i);
        list.push(i);
        ids.push(id);
      }
      return ids;
    },
    addGceVms: (project, zone, count, labels) => compute.addVms(project, zone, count, labels),
    stats: () => ({ ...stats, byAction: { ...stats.byAction }, unknown: [...stats.unknown] }),
    reset(next) {
      stats = fresh();
      compute.resetQuota();
      answers = next ?? answers;
      buckets = new BucketRegistry();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
