/**
 * The sts:GetCallerIdentity exchange of an `iam` join on the wire: the request a node signs without sending it,
 * and the answer STS gives, which the server reads.
 */
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { JoinRefusal } from "../../join/errors";

/** The only STS call an `iam` join may carry; the server compares the body byte for byte. */
export const GET_CALLER_IDENTITY_BODY = "Action=GetCallerIdentity&Version=2011-06-15";

/** Content type of the signed request: STS's query protocol, never its JSON protocol. */
export const STS_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8";

/** Header that carries the server's challenge; it must be signed so a captured request cannot be replayed. */
export const CHALLENGE_HEADER = "x-discovery-challenge";

/** A signed HTTP request as the node sends it inside `POST /v1/join` (`sts_request`). */
export interface StsRequest {
  /** Absolute URL of the STS endpoint, path `/`. */
  url: string;
  /** HTTP method; always `POST`. */
  method: string;
  /** Header names in lower case, mapped to their single value. */
  headers: Record<string, string>;
  /** The form-encoded GetCallerIdentity body. */
  body: string;
}

/** AWS credentials the node signs with: instance-profile, SSO or static keys. */
export interface AwsCredentials {
  /** Access key id. */
  accessKeyId: string;
  /** Secret access key. */
  secretAccessKey: string;
  /** Session token of temporary credentials; signed along with the rest. */
  sessionToken?: string;
}

/** What the node needs to prove its AWS identity to the runtime. */
export interface SignedGetCallerIdentityArgs {
  /** The challenge from `POST /v1/join/challenge`. */
  challenge: string;
  /** STS endpoint the runtime will call, e.g. `https://sts.us-west-2.amazonaws.com`; must match the runtime's allowlist. */
  stsEndpoint: string;
  /** Signing region; `us-east-1` for the global endpoint. */
  region: string;
  /** Credentials to sign with. */
  credentials: AwsCredentials;
  /** Signing time; defaults to now (tests pin it). */
  signingDate?: Date;
}

/**
 * Signs `sts:GetCallerIdentity` with the challenge among the signed headers, without sending it: the runtime
 * sends it, so the node proves its identity without handing over credentials.
 */
export async function signedGetCallerIdentity(args: SignedGetCallerIdentityArgs): Promise<StsRequest> {
  const endpoint = new URL(args.stsEndpoint);
  if (endpoint.protocol !== "https:" && endpoint.protocol !== "http:")
    throw new Error(`stsEndpoint must be an http(s) URL, got ${args.stsEndpoint}`);
  const signer = new SignatureV4({
    service: "sts",
    region: args.region,
    credentials: args.credentials,
    sha256: Sha256,
  });
  const signed = await signer.sign(
    {
      method: "POST",
      protocol: endpoint.protocol,
      hostname: endpoint.hostname,
      port: endpoint.port ? Number(endpoint.port) : undefined,
      path: "/",
      query: {},
      // SigV4 signs the host only when it is present; the runtime refuses an unsigned host.
      headers: {
        host: endpoint.host,
        "content-type": STS_FORM_CONTENT_TYPE,
        [CHALLENGE_HEADER]: args.challenge,
      },
      body: GET_CALLER_IDENTITY_BODY,
    },
    { signingDate: args.signingDate ?? new Date() },
  );
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(signed.headers)) headers[name.toLowerCase()] = String(value);
  return { url: `${endpoint.origin}/`, method: "POST", headers, body: GET_CALLER_IDENTITY_BODY };
}

/** The caller STS vouched for. */
export interface CallerIdentity {
  /** 12-digit account id. */
  account: string;
  /** Caller ARN, e.g. `arn:aws:sts::123456789012:assumed-role/node/i-0abc...`. */
  arn: string;
  /** Unique id of the principal (`AROA...:session` for roles). */
  userId: string;
}

const CALLER_ARN_RE = /^arn:aws(?:-[a-z]+)*:(?:iam|sts)::(\d{12}):[\w+=,.@/-]{1,1024}$/;

const xml = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false, // account ids keep their leading zeros
  processEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
});

function parseXml(text: string): Record<string, unknown> | undefined {
  if (/<!DOCTYPE/i.test(text) || XMLValidator.validate(text) !== true) return undefined;
  try {
    return xml.parse(text) as Record<string, unknown>;
  } catch {
    return undefined; // the validator and the parser disagree: treat as not XML
  }
}

function field(node: unknown, name: string): unknown {
  return typeof node === "object" && node !== null && !Array.isArray(node)
    ? (node as Record<string, unknown>)[name]
    : undefined;
}

function invalid(code: string, reason: string): never {
  throw new JoinRefusal(code, reason, 403);
}

/**
 * Reads the identity from STS's answer (server side). Only a `GetCallerIdentityResponse` root is accepted:
 * Vault's CVE-2020-16250 parsed the reflected output of another AWS API as an identity.
 */
export function parseCallerIdentity(text: string): CallerIdentity {
  const doc = parseXml(text);
  if (!doc) return invalid("sts_response_not_xml", "STS answered with something that is not plain XML");
  const roots = Object.keys(doc);
  if (roots.length !== 1 || roots[0] !== "GetCallerIdentityResponse")
    invalid(
      "sts_response_unexpected",
      `STS answered ${JSON.stringify(roots.join(",").slice(0, 80))}, not GetCallerIdentityResponse`,
    );
  const result = field(doc.GetCallerIdentityResponse, "GetCallerIdentityResult");
  const [arn, userId, account] = ["Arn", "UserId", "Account"].map((n) => field(result, n));
  if (typeof arn !== "string" || typeof userId !== "string" || typeof account !== "string")
    return invalid("sts_identity_invalid", "GetCallerIdentityResult must hold one Arn, UserId and Account");
  if (!/^\d{12}$/.test(account) || CALLER_ARN_RE.exec(arn)?.[1] !== account || !/^[\w:+=,.@-]{1,256}$/.test(userId))
    invalid(
      "sts_identity_invalid",
      `STS returned an identity that does not hold together: ${JSON.stringify(arn.slice(0, 120))}`,
    );
  return { account, arn, userId };
}

/** `Code: Message` of an STS `ErrorResponse`, or "" when the answer is not one; names why STS refused. */
export function stsErrorDetail(text: string): string {
  const error = field(field(parseXml(text), "ErrorResponse"), "Error");
  const code = field(error, "Code");
  const message = field(error, "Message");
  return typeof code === "string" ? `${code}${typeof message === "string" ? `: ${message}` : ""}` : "";
}
