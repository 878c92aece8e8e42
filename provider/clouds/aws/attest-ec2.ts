import * as crypto from "crypto";
import { isIPv4 } from "net";
import { JoinRefusal } from "../../join/errors";
import { DEFAULT_AWS_IID_TTL, parseDuration, type Token } from "../../model";
import {
  AwsCallError,
  awsFailure,
  Ec2CheckOptions,
  hostPrincipals,
  InstanceAddresses,
  InstanceApiFactory,
  sdkInstanceApi,
} from "./instance-lookup";
import { awsRegionCertificate } from "./region-certs";
import { ec2NodeName } from "./identity";
import { BerError, BerNode, contentOf, oidText } from "../../util/ber";
import {
  certificateIssuerAndSerial,
  certificateNames,
  CmsError,
  CmsSignedData,
  CmsSignerInfo,
  ContentInfo,
  readContentInfo,
  readSignedData,
} from "../../util/cms";

export type { AwsCredentials } from "./credentials";

/** Largest PKCS7 text accepted; AWS's is about 1.5 KiB, so this leaves room for armour and a certificate or two. */
export const MAX_IID_CHARS = 16 * 1024;
/** How far `pendingTime` may lie ahead of the server's clock before the document is refused. */
export const MAX_PENDING_TIME_SKEW_MS = 60_000;
const MAX_CHAIN_DEPTH = 4;

const OID = {
  data: "1.2.840.113549.1.7.1",
  signedData: "1.2.840.113549.1.7.2",
  contentType: "1.2.840.113549.1.9.3",
  messageDigest: "1.2.840.113549.1.9.4",
} as const;
const OCTET_STRING = 0x04;
const [SHA2, PKCS1] = ["2.16.840.1.101.3.4.2.", "1.2.840.113549.1.1."];
const DIGESTS: Record<string, string> = { [`${SHA2}1`]: "sha256", [`${SHA2}2`]: "sha384", [`${SHA2}3`]: "sha512" };
// rsaEncryption (what AWS writes) leaves the hash to digestAlgorithm; the combined OIDs must agree with it.
const RSA_SIGNATURES: Record<string, string | null> = {
  [`${PKCS1}1`]: null,
  [`${PKCS1}11`]: "sha256",
  [`${PKCS1}12`]: "sha384",
  [`${PKCS1}13`]: "sha512",
};

/** What a verified instance identity document says about the instance; every field comes from the signed content. */
export interface InstanceIdentity {
  /** 12-digit account that owns the instance. */
  accountId: string;
  region: string;
  instanceId: string;
  /** When the instance last entered `pending` (launch or start). */
  pendingTime: Date;
  /** Primary private IPv4 address; absent on IPv6-only instances. */
  privateIp?: string;
  availabilityZone: string;
  imageId: string;
  instanceType: string;
  architecture: string;
}

/** Trust and clock settings for {@link verifyInstanceIdentity}. */
export interface VerifyIdentityOptions {
  /** PEM certificates trusted beside AWS's region certificates (`join.aws.extra_ca_certs`), e.g. a test CA. */
  extraCaPems: string[];
  now: Date;
  /** The token's `aws_iid_ttl` in milliseconds: how long after `pendingTime` the document is accepted. */
  ttlMs: number;
}

const iid = (code: string, reason: string, status: 400 | 403 = 403) =>
  new JoinRefusal(code, `instance identity document: ${reason}`, status);
const malformed = (reason: string) => iid("iid_malformed", reason, 400);
const fieldInvalid = (reason: string) => iid("iid_field_invalid", reason, 400);
// Values from the request end up in reasons and logs: quoted, and cut short so a caller can't flood either.
const quote = (v: unknown) => (JSON.stringify(v) ?? String(v)).slice(0, 80);
function parsed<T>(parse: () => T, reason: string): T {
  try {
    return parse();
  } catch {
    throw malformed(reason);
  }
}

function decodeBase64(pkcs7: unknown): Uint8Array {
  if (typeof pkcs7 !== "string" || pkcs7.trim() === "") throw malformed("iid must be the base64 PKCS7 from IMDS");
  if (pkcs7.length > MAX_IID_CHARS)
    throw iid("iid_too_large", `${pkcs7.length} characters, over the ${MAX_IID_CHARS} accepted`, 400);
  let text = pkcs7.trim();
  const armoured = /^-----BEGIN PKCS7-----([^-]*)-----END PKCS7-----$/.exec(text);
  if (armoured) text = armoured[1];
  const b64 = text.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0)
    throw malformed("iid is not base64 (PEM armour, if any, must be BEGIN/END PKCS7)");
  return new Uint8Array(Buffer.from(b64, "base64"));
}

type SignedData = { sd: CmsSignedData; der: Uint8Array };

// Read straight from the BER tree (provider/util/cms.ts): no object per field, so a join storm is not spent parsing.
function parseSignedData(der: Uint8Array): SignedData {
  let info: ContentInfo;
  try {
    info = readContentInfo(der);
  } catch (err) {
    if (err instanceof BerError) throw malformed(`not a BER-encoded PKCS7 structure (${err.message})`);
    if (err instanceof CmsError) throw malformed(`not a PKCS7 ContentInfo (${err.message})`);
    throw err;
  }
  if (info.contentType !== OID.signedData)
    throw iid("iid_not_signed_data", `PKCS7 content type ${info.contentType} is not SignedData`, 400);
  try {
    return { sd: readSignedData(info), der };
  } catch (err) {
    if (err instanceof CmsError) throw malformed(`SignedData does not parse (${err.message})`);
    throw err;
  }
}

// The encapsulated content is the only source of the identity: nothing outside the signature is ever read.
function signedContent({ sd, der }: SignedData): Uint8Array {
  if (sd.eContentType !== OID.data) throw malformed(`encapsulated content type ${sd.eContentType} is not data`);
  const eContent = sd.eContent;
  if (!eContent) throw malformed("SignedData carries no content");
  if (eContent.children.length === 0) return contentOf(der, eContent);
  if (!eContent.children.every((p) => p.tag === OCTET_STRING)) throw malformed("content is not a simple OCTET STRING");
  return Buffer.concat(eContent.children.map((p) => contentOf(der, p)));
}

function parseJsonObject(content: Uint8Array): Record<string, unknown> {
  const text = () => new TextDecoder("utf-8", { fatal: true }).decode(content);
  const doc: unknown = parsed(() => JSON.parse(text()), "signed content is not JSON");
  if (doc === null || typeof doc !== "object" || Array.isArray(doc))
    throw malformed("signed content is not a JSON object");
  return doc as Record<string, unknown>;
}

type Names = { issuer: Uint8Array; serial: Uint8Array };
// The public key and validity are kept beside the certificate: X509Certificate makes a new KeyObject per access.
type Cert = Names & { x509: crypto.X509Certificate; key: crypto.KeyObject; from: number; to: number };

function certOf(x509: crypto.X509Certificate, names: Names): Cert {
  const [from, to] = [Date.parse(x509.validFrom), Date.parse(x509.validTo)];
  return { ...names, x509, key: x509.publicKey, from, to };
}

// Parsed certificates by PEM: the region certificates and extra CAs are the same few for every join.
const parsedPems = new Map<string, Cert[]>();

function certsFromPems(pems: string[], what: string): Cert[] {
  return pems.flatMap((pem, i) => {
    const known = parsedPems.get(pem);
    if (known) return known;
    const certs = parsePem(pem, `${what} ${i + 1}`);
    if (parsedPems.size >= 64) parsedPems.clear();
    parsedPems.set(pem, certs);
    return certs;
  });
}

function parsePem(pem: string, what: string): Cert[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g);
  if (!blocks) throw new Error(`${what} holds no PEM certificate`);
  return blocks.map((block) => {
    const x509 = new crypto.X509Certificate(block);
    return certOf(x509, certificateNames(new Uint8Array(x509.raw)));
  });
}

// Issuer and serial, compared byte for byte: the SignerInfo names its certificate, and only that one may verify.
const isNamedBy = (cert: Names, sid: Names) =>
  Buffer.compare(cert.issuer, sid.issuer) === 0 && Buffer.compare(cert.serial, sid.serial) === 0;

const validAt = (c: Cert, now: Date) => c.from <= now.getTime() && now.getTime() <= c.to;
const issuedBy = (child: Cert, parent: Cert, now: Date) =>
  parent.x509.ca && validAt(parent, now) && child.x509.checkIssued(parent.x509) && child.x509.verify(parent.key);

function chainsTo(leaf: Cert, bag: Cert[], anchors: Cert[], now: Date): boolean {
  let current = leaf;
  for (let depth = 0; depth < MAX_CHAIN_DEPTH; depth++) {
    if (anchors.some((a) => issuedBy(current, a, now))) return true;
    const next = bag.find((c) => c !== current && issuedBy(current, c, now));
    if (!next) return false;
    current = next;
  }
  return false;
}

function bagCertificates({ sd, der }: SignedData): Cert[] {
  return sd.certificates.flatMap((c) => {
    try {
      return [certOf(new crypto.X509Certificate(c.der), certificateIssuerAndSerial(der, c.node))];
    } catch {
      return []; // unparseable certificates can't sign anything
    }
  });
}

/**
 * The certificate the SignerInfo names, if it is trusted: AWS's certificate for the document's region, an extra
 * CA itself, or a certificate from the PKCS7's bag that an extra CA issued. A bag certificate is never trusted
 * for merely being there (SPIRE's Azure fix: trust the signer, not the first certificate in the bag).
 */
function trustedSigner(signed: SignedData, info: CmsSignerInfo, region: string, opts: VerifyIdentityOptions): Cert {
  const sid = info.sid;
  if (!sid) throw iid("iid_untrusted_signer", "the signer must be named by issuer and serial number, as AWS does");
  const regionPem = awsRegionCertificate(region);
  if (!regionPem)
    throw iid("iid_unknown_region", `region ${quote(region)} is not an AWS region with a known signing certificate`);
  const extraCas = certsFromPems(opts.extraCaPems, "extra CA certificate");
  const anchors = [...certsFromPems([regionPem], `AWS certificate of ${region}`), ...extraCas];
  const anchor = anchors.find((c) => isNamedBy(c, sid));
  if (anchor && !validAt(anchor, opts.now))
    throw iid("iid_untrusted_signer", `signing certificate is outside its validity (${anchor.x509.validTo})`);
  if (anchor) return anchor;
  const bag = bagCertificates(signed);
  const named = bag.find((c) => isNamedBy(c, sid));
  if (named && validAt(named, opts.now) && chainsTo(named, bag, extraCas, opts.now)) return named;
  const why = named
    ? "its signing certificate (carried in the PKCS7) is not issued by a CA in join.aws.extra_ca_certs"
    : `signed by a certificate that is neither AWS's for region ${region} nor in join.aws.extra_ca_certs`;
  throw iid("iid_untrusted_signer", why);
}

function singleAttribute(info: CmsSignerInfo, type: string): BerNode | undefined {
  const found = (info.signedAttrs?.attributes ?? []).filter((a) => a.type === type);
  return found.length === 1 && found[0].values.length === 1 ? found[0].values[0] : undefined;
}

function isOid(buf: Uint8Array, node: BerNode | undefined, oid: string): boolean {
  try {
    return node !== undefined && oidText(buf, node) === oid;
  } catch {
    return false; // a malformed OID is no OID
  }
}

function verifySignature(signed: SignedData, info: CmsSignerInfo, content: Uint8Array, signer: Cert): void {
  const hash = DIGESTS[info.digestAlgorithm];
  const sigAlg = info.signatureAlgorithm;
  const sigHash = Object.hasOwn(RSA_SIGNATURES, sigAlg) ? RSA_SIGNATURES[sigAlg] : undefined;
  const rsa = signer.key.asymmetricKeyType === "rsa";
  if (!hash || sigHash === undefined || (sigHash !== null && sigHash !== hash) || !rsa)
    throw iid("iid_unsupported_algorithm", `signature ${sigAlg} / ${info.digestAlgorithm} is not RSA, SHA-2`);
  let data = content;
  if (info.signedAttrs) {
    // With signed attributes the signature covers them, so they must bind the content: type and digest.
    const der = signed.der;
    if (!isOid(der, singleAttribute(info, OID.contentType), OID.data))
      throw iid("iid_signature_invalid", "signed attributes lack a content type of data");
    const digest = singleAttribute(info, OID.messageDigest);
    const actual = crypto.createHash(hash).update(content).digest();
    if (digest?.tag !== OCTET_STRING || !actual.equals(contentOf(der, digest)))
      throw iid("iid_signature_invalid", "the signed message digest does not match the content");
    data = info.signedAttrs.der;
  }
  const key = { key: signer.key, padding: crypto.constants.RSA_PKCS1_PADDING };
  if (!crypto.verify(hash, data, key, info.signature))
    throw iid("iid_signature_invalid", "the signature does not verify with the signing certificate");
}

function field(doc: Record<string, unknown>, name: string, re: RegExp, what: string): string {
  const v = doc[name];
  if (v === undefined || v === null) throw fieldInvalid(`${name} is missing`);
  if (typeof v !== "string" || !re.test(v)) throw fieldInvalid(`${name} ${quote(v)} is not ${what}`);
  return v;
}

function identityOf(doc: Record<string, unknown>, region: string): InstanceIdentity {
  const pendingText = field(doc, "pendingTime", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/, "a UTC time");
  const pendingTime = new Date(pendingText);
  if (Number.isNaN(pendingTime.getTime())) throw fieldInvalid(`pendingTime ${quote(pendingText)} is not a valid time`);
  const privateIp = doc.privateIp;
  if (privateIp !== undefined && privateIp !== null && (typeof privateIp !== "string" || !isIPv4(privateIp)))
    throw fieldInvalid(`privateIp ${quote(privateIp)} is not an IPv4 address`);
  const az = field(doc, "availabilityZone", /^[a-z0-9-]{1,64}$/, "an availability zone name");
  if (!az.startsWith(region)) throw fieldInvalid(`availabilityZone ${quote(az)} is not in region ${region}`);
  return {
    accountId: field(doc, "accountId", /^\d{12}$/, "a 12-digit AWS account id"),
    region,
    instanceId: field(doc, "instanceId", /^i-[0-9a-f]{8,17}$/, "an EC2 instance id (i- and 8 to 17 hex digits)"),
    pendingTime,
    ...(typeof privateIp === "string" && { privateIp }),
    availabilityZone: az,
    imageId: field(doc, "imageId", /^ami-[0-9a-f]{8,17}$/, "an AMI id"),
    instanceType: field(doc, "instanceType", /^[a-z0-9][a-z0-9.-]{1,40}$/, "an instance type"),
    architecture: field(doc, "architecture", /^[a-z0-9_]{1,32}$/, "an architecture name"),
  };
}

/**
 * Verifies the PKCS7 of IMDS `/latest/dynamic/instance-identity/rsa2048` (base64, PEM armour optional) and returns
 * the identity it signs. Throws {@link JoinRefusal}: 400 for malformed input, 403 for an untrusted or stale one.
 */
export function verifyInstanceIdentity(pkcs7: string, opts: VerifyIdentityOptions): InstanceIdentity {
  const signed = parseSignedData(decodeBase64(pkcs7));
  const infos = signed.sd.signerInfos;
  if (infos.length !== 1) throw iid("iid_signer_count", `${infos.length} signers; AWS signs with exactly one`, 400);
  const [info] = infos;
  const content = signedContent(signed);
  // Read before the signature is checked only to pick the certificate; the region is trusted once it verifies.
  const doc = parseJsonObject(content);
  if (typeof doc.region !== "string") throw fieldInvalid("region is missing");
  const signer = trustedSigner(signed, info, doc.region, opts);
  verifySignature(signed, info, content, signer);
  const identity = identityOf(doc, doc.region);
  const age = opts.now.getTime() - identity.pendingTime.getTime();
  const pending = `pendingTime ${identity.pendingTime.toISOString()}`;
  const [ageS, ttlS] = [Math.round(age / 1000), Math.round(opts.ttlMs / 1000)];
  if (age > opts.ttlMs)
    throw iid("iid_expired", `${pending} is ${ageS} s old, over the token's aws_iid_ttl of ${ttlS} s; join sooner`);
  if (-age > MAX_PENDING_TIME_SKEW_MS)
    throw iid("iid_from_future", `${pending} is ${-ageS} s ahead of this server's clock (at most 60 s allowed)`);
  return identity;
}

/** An ec2 allow rule of a token. */
export type Ec2AllowRule = NonNullable<Token["spec"]["allow"]>[number];

/** The first allow rule of `token` for the document's account whose `aws_regions`, if set, include its region. */
export function matchEc2Rule(identity: Pick<InstanceIdentity, "accountId" | "region">, token: Token): Ec2AllowRule {
  const name = quote(token.metadata.name);
  const forAccount = (token.spec.allow ?? []).filter((r) => r.aws_account === identity.accountId);
  const rule = forAccount.find((r) => !r.aws_regions || r.aws_regions.includes(identity.region));
  if (rule) return rule;
  const [code, what] = forAccount.length
    ? ["ec2_region_not_allowed", `AWS account ${identity.accountId} in region ${identity.region}`]
    : ["ec2_account_not_allowed", `AWS account ${identity.accountId}`];
  throw new JoinRefusal(code, `${what}: no rule of token ${name} allows it`, 403);
}

/**
 * Asks EC2 whether the instance exists in its account and region and is running, assuming the rule's `aws_role`
 * when it names one (a foreign account). A document alone proves the instance once lived; this proves it still does.
 */
export async function checkInstanceRunning(
  identity: InstanceIdentity,
  rule: Ec2AllowRule,
  opts: Ec2CheckOptions = {},
  instances?: InstanceApiFactory,
): Promise<InstanceAddresses> {
  const session = opts.roleSessionName ?? "discovery-ec2-join";
  const scope = { region: identity.region, roleArn: rule.aws_role };
  // Shared clients (and assumed credentials) when the caller keeps them; else ones made for this check alone.
  const own = instances ? undefined : sdkInstanceApi(scope, { ...opts, roleSessionName: session });
  const api = own ?? instances!(scope);
  const id = identity.instanceId;
  const where = `account ${identity.accountId}, region ${identity.region}`;
  const refuse = (code: string, reason: string) => new JoinRefusal(code, `instance ${id} ${reason}`, 403);
  try {
    const found = await api.describeInstance(id);
    if (!found) throw refuse("ec2_instance_not_found", `does not exist in ${where}`);
    if (found.ownerId && found.ownerId !== identity.accountId)
      throw refuse("ec2_account_mismatch", `belongs to account ${found.ownerId}, not ${identity.accountId}`);
    if (found.state !== "running") throw refuse("ec2_instance_not_running", `is ${found.state}, not running`);
    return found.addresses;
  } catch (err) {
    if (!(err instanceof AwsCallError)) throw err;
    if (err.action === "sts:AssumeRole")
      throw awsFailure(err.cause, "ec2_assume_role_failed", `assuming ${rule.aws_role} to check ${id}`);
    throw awsFailure(err.cause, "ec2_describe_failed", `DescribeInstances for ${id} in ${identity.region}`);
  } finally {
    own?.destroy();
  }
}

/** What the join service needs of an ec2 join: the node's name, labels, certificate principals and identity. */
export interface Ec2Attestation {
  /** `<account>-<instance-id>`: unique per instance, so one join per instance. */
  nodeName: string;
  labels: Record<string, string>;
  principals: string[];
  identity: InstanceIdentity;
}

/** Inputs of {@link attestEc2} besides the document. */
export interface Ec2AttestContext {
  /** The token named by the join request; its join_method must be ec2. */
  token: Token;
  extraCaPems: string[];
  now: Date;
  aws?: Ec2CheckOptions;
  /** Clients kept across joins, per region and role; default ones made for each join. */
  instances?: InstanceApiFactory;
}

/** The whole ec2 join check: signed document, allow rule, and a live running instance. */
export async function attestEc2(iid: string, ctx: Ec2AttestContext): Promise<Ec2Attestation> {
  const { spec, metadata } = ctx.token;
  if (spec.join_method !== "ec2") {
    const reason = `token ${quote(metadata.name)} is for join_method ${spec.join_method}, not ec2`;
    throw new JoinRefusal("join_method_mismatch", reason, 403);
  }
  const ttlMs = parseDuration(spec.aws_iid_ttl ?? DEFAULT_AWS_IID_TTL) ?? 5 * 60_000;
  const identity = verifyInstanceIdentity(iid, { extraCaPems: ctx.extraCaPems, now: ctx.now, ttlMs });
  const rule = matchEc2Rule(identity, ctx.token);
  const live = await checkInstanceRunning(identity, rule, ctx.aws, ctx.instances);
  const nodeName = ec2NodeName(identity.accountId, identity.instanceId);
  return {
    nodeName,
    labels: {
      "discovery/origin": "cloud",
      "discovery/account-id": identity.accountId,
      "discovery/instance-id": identity.instanceId,
      "discovery/region": identity.region,
    },
    principals: hostPrincipals(nodeName, { ...live, privateIp: identity.privateIp ?? live.privateIp }),
    identity,
  };
}
