/**
 * A benchmark control plane: a fast in-memory EC2 for bench/ only (moto stays the control plane of tests). It
 * speaks the real wire protocol (the EC2 Query API over HTTP, as the AWS SDK sends it) for DescribeInstances, adds
 * a configurable latency to every answer, and enforces EC2's request token buckets per account and region the way
 * AWS does: an empty bucket answers at once with 503 RequestLimitExceeded. So a bench measures our code and the
 * limits production has, not moto's single Python process.
 *
 * Buckets (FIELD-NOTES, "EC2 API token buckets"): DescribeInstances by InstanceIds is unpaginated (bucket 50,
 * refill 10/s); with filters or MaxResults it is a non-mutating call (bucket 100, refill 20/s).
 */
import * as http from "http";
import type { AddressInfo } from "net";
import { BucketProfile, BucketRegistry, EC2_NON_MUTATING, EC2_UNFILTERED } from "../provider/clouds/aws/rate-limits";

export interface ControlPlaneOptions {
  /** Added to every answer, as AWS's ~50 ms per call. */
  latencyMs: number;
  /** Enforce EC2's buckets (default true). */
  buckets?: boolean;
  /** The account the callers' credentials belong to. */
  account?: string;
}

export interface ControlPlaneStats {
  calls: number;
  throttled: number;
  /** Instance ids asked for, in all calls. */
  idsAsked: number;
}

export interface ControlPlane {
  endpoint: string;
  /** Makes `count` running instances in `region`; their ids. */
  addInstances(region: string, count: number): string[];
  stats(): ControlPlaneStats;
  reset(): void;
  close(): Promise<void>;
}

/** Starts the control plane on a loopback port. */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const account = opts.account ?? "123456789012";
  const instances = new Map<string, { region: string; privateIp: string }>();
  let buckets = new BucketRegistry();
  let stats: ControlPlaneStats = { calls: 0, throttled: 0, idsAsked: 0 };
  let serial = 0;

  // The runtime's own bucket class, asked without waiting: AWS answers an empty bucket at once.
  const take = (region: string, p: BucketProfile): boolean => {
    if (opts.buckets === false) return true;
    const bucket = buckets.get(`${account}/${region}`, p);
    if (bucket.available() < 1) return false;
    void bucket.take(); // a token is there, so this does not wait
    return true;
  };

  const xmlError = (code: string) =>
    `<Response><Errors><Error><Code>${code}</Code><Message>${code}</Message></Error></Errors><RequestID>r</RequestID></Response>`;
  const describeXml = (ids: string[]) =>
    `<DescribeInstancesResponse><requestId>r</requestId><reservationSet>${ids
      .map((id) => {
        const i = instances.get(id)!;
        return (
          `<item><reservationId>r-${id.slice(2)}</reservationId><ownerId>${account}</ownerId><instancesSet><item>` +
          `<instanceId>${id}</instanceId><instanceState><code>16</code><name>running</name></instanceState>` +
          `<privateIpAddress>${i.privateIp}</privateIpAddress><privateDnsName>ip-${i.privateIp.replace(/\./g, "-")}.ec2.internal</privateDnsName>` +
          `</item></instancesSet></item>`
        );
      })
      .join("")}</reservationSet></DescribeInstancesResponse>`;

  const answer = (region: string, body: string): { status: number; body: string } => {
    const form = new URLSearchParams(body);
    if (form.get("Action") !== "DescribeInstances") return { status: 400, body: xmlError("InvalidAction") };
    const byId = [...form.entries()].filter(([k]) => /^InstanceId\.\d+$/.test(k)).map(([, v]) => v);
    const filtered = [...form.keys()].some((k) => k.startsWith("Filter.")) || form.has("MaxResults");
    stats.calls++;
    if (!take(region, byId.length && !filtered ? EC2_UNFILTERED : EC2_NON_MUTATING)) {
      stats.throttled++;
      return { status: 503, body: xmlError("RequestLimitExceeded") };
    }
    if (byId.length > 1000) return { status: 400, body: xmlError("InvalidParameterValue") };
    stats.idsAsked += byId.length;
    const inRegion = (id: string) => instances.get(id)?.region === region;
    if (byId.length) {
      if (byId.some((id) => !inRegion(id))) return { status: 400, body: xmlError("InvalidInstanceID.NotFound") };
      return { status: 200, body: describeXml(byId) };
    }
    const values = [...form.entries()].filter(([k]) => /^Filter\.1\.Value\.\d+$/.test(k)).map(([, v]) => v);
    stats.idsAsked += values.length;
    return { status: 200, body: describeXml(values.filter(inRegion)) };
  };

  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      // SigV4's credential scope names the region: AKID/date/<region>/ec2/aws4_request.
      const region = /Credential=[^/]+\/\d+\/([^/]+)\//.exec(req.headers.authorization ?? "")?.[1] ?? "us-east-1";
      const a = answer(region, body);
      setTimeout(() => res.writeHead(a.status, { "content-type": "text/xml" }).end(a.body), opts.latencyMs);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    addInstances(region, count) {
      const ids: string[] = [];
      for (let i = 0; i < count; i++) {
        serial++;
        const id = `i-${serial.toString(16).padStart(17, "0")}`;
        instances.set(id, { region, privateIp: `10.${(serial >> 16) & 255}.${(serial >> 8) & 255}.${serial & 255}` });
        ids.push(id);
      }
      return ids;
    },
    stats: () => ({ ...stats }),
    reset() {
      stats = { calls: 0, throttled: 0, idsAsked: 0 };
      buckets = new BucketRegistry();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
