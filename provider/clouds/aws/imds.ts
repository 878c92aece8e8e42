/** A minimal EC2 instance metadata client (IMDSv2), honouring AWS_EC2_METADATA_SERVICE_ENDPOINT. */
export class InstanceMetadata {
  private token?: string;
  private readonly base: string;

  /** A client for `endpoint`, default the environment's or the link-local address. */
  constructor(endpoint = process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT ?? "http://169.254.169.254") {
    this.base = endpoint.replace(/\/$/, "");
  }

  /** Reads one path (e.g. `/latest/dynamic/instance-identity/rsa2048`) with an IMDSv2 session token. */
  async get(path: string): Promise<string> {
    if (!this.token) {
      const t = await fetch(`${this.base}/latest/api/token`, {
        method: "PUT",
        headers: { "x-aws-ec2-metadata-token-ttl-seconds": "300" },
        signal: AbortSignal.timeout(10_000),
      }).catch((err: Error) => {
        throw new Error(`cannot reach the instance metadata service at ${this.base}: ${err.message}`);
      });
      if (!t.ok) throw new Error(`the instance metadata service refused an IMDSv2 token: HTTP ${t.status}`);
      this.token = await t.text();
    }
    const r = await fetch(`${this.base}${path}`, {
      headers: { "x-aws-ec2-metadata-token": this.token },
      signal: AbortSignal.timeout(10_000),
    });
    if (!r.ok) throw new Error(`the instance metadata service answered HTTP ${r.status} for ${path}`);
    return r.text();
  }

  /** The instance profile's current credentials. */
  async credentials(): Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken?: string }> {
    const role = (await this.get("/latest/meta-data/iam/security-credentials/")).split("\n")[0].trim();
    if (!role) throw new Error("this instance has no instance profile: the iam join method needs one");
    const c = JSON.parse(await this.get(`/latest/meta-data/iam/security-credentials/${role}`)) as Record<
      string,
      string
    >;
    return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.Token };
  }
}
