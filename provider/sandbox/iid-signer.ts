import { webcrypto } from "crypto";
import * as fs from "fs";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";

/**
 * Test signers for EC2 instance identity documents: a throwaway CA and helpers that produce PKCS7 exactly as
 * IMDS `/latest/dynamic/instance-identity/rsa2048` does, plus forged variants for the refusal tests.
 * Nothing here is trusted by default: a runtime trusts the test CA only when told to (`join.aws.extra_ca_certs`).
 */

type CryptoKey = webcrypto.CryptoKey;

// An engine passed to each call rather than pkijs.setEngine(): no process-wide state for other tests to trip on.
const engine = new pkijs.CryptoEngine({
  name: "node",
  crypto: webcrypto as unknown as pkijs.CryptoEngineParameters["crypto"],
});

const OID = {
  data: "1.2.840.113549.1.7.1",
  signedData: "1.2.840.113549.1.7.2",
  contentType: "1.2.840.113549.1.9.3",
  messageDigest: "1.2.840.113549.1.9.4",
  signingTime: "1.2.840.113549.1.9.5",
  rsaEncryption: "1.2.840.113549.1.1.1",
  country: "2.5.4.6",
  state: "2.5.4.8",
  locality: "2.5.4.7",
  organization: "2.5.4.10",
  commonName: "2.5.4.3",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
} as const;

/** A key pair with its certificate: the test CA, a certificate it issued, or a stranger nobody trusts. */
export interface TestSigner {
  /** The certificate as pkijs holds it (its issuer and serial identify the signer in a SignerInfo). */
  cert: pkijs.Certificate;
  /** The certificate in PEM, e.g. for `extraCaPems` or `join.aws.extra_ca_certs`. */
  certPem: string;
  /** The RSA-2048 private key that signs. */
  privateKey: CryptoKey;
}

/** Options for {@link createSigner}. */
export interface CreateSignerOptions {
  /** Common name of the subject; also makes two signers easy to tell apart in failures. */
  commonName?: string;
  /** Who signs the certificate; omitted, it is self-signed. */
  issuer?: TestSigner;
  /** Whether the certificate may issue others (basicConstraints cA). Default: true when self-signed. */
  isCa?: boolean;
  /** Certificate serial number. Default: random. */
  serial?: number;
  /** Validity window; default one hour ago to ten years ahead. */
  notBefore?: Date;
  /** End of the validity window. */
  notAfter?: Date;
}

function rdn(commonName: string): pkijs.RelativeDistinguishedNames {
  // Shaped like AWS's own subjects (C, ST, L, O), with a CN so test signers are told apart.
  const attrs: [string, string][] = [
    [OID.country, "US"],
    [OID.state, "Washington State"],
    [OID.locality, "Seattle"],
    [OID.organization, "pulumi-discovery tests"],
    [OID.commonName, commonName],
  ];
  return new pkijs.RelativeDistinguishedNames({
    typesAndValues: attrs.map(
      ([type, value]) =>
        new pkijs.AttributeTypeAndValue({
          type,
          value: type === OID.country ? new asn1js.PrintableString({ value }) : new asn1js.Utf8String({ value }),
        }),
    ),
  });
}

function toPem(der: ArrayBuffer, label: string): string {
  const lines =
    Buffer.from(der)
      .toString("base64")
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** Creates an RSA-2048 key and an X.509 certificate for it, self-signed or issued by `opts.issuer`. */
export async function createSigner(opts: CreateSignerOptions = {}): Promise<TestSigner> {
  const keys = (await webcrypto.subtle.generateKey(
    { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    true,
    ["sign", "verify"],
  )) as webcrypto.CryptoKeyPair;
  const isCa = opts.isCa ?? !opts.issuer;
  const serial = opts.serial ?? 1 + Math.floor(Math.random() * 0x7fffffff);
  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = new asn1js.Integer({ value: serial });
  cert.subject = rdn(opts.commonName ?? (isCa ? "Test IID CA" : "Test IID signer"));
  cert.issuer = opts.issuer ? opts.issuer.cert.subject : cert.subject;
  cert.notBefore.value = opts.notBefore ?? new Date(Date.now() - 3600_000);
  cert.notAfter.value = opts.notAfter ?? new Date(Date.now() + 10 * 365 * 86400_000);
  // keyCertSign (bit 5) for a CA, digitalSignature (bit 0) for a leaf; OpenSSL checks both when chaining.
  const keyUsage = new asn1js.BitString({ valueHex: new Uint8Array(isCa ? [0x06] : [0x80]).buffer, unusedBits: 1 });
  cert.extensions = [
    new pkijs.Extension({
      extnID: OID.basicConstraints,
      critical: true,
      extnValue: new pkijs.BasicConstraints({ cA: isCa }).toSchema().toBER(false),
      parsedValue: new pkijs.BasicConstraints({ cA: isCa }),
    }),
    new pkijs.Extension({ extnID: OID.keyUsage, critical: true, extnValue: keyUsage.toBER(false) }),
  ];
  await cert.subjectPublicKeyInfo.importKey(keys.publicKey, engine);
  await cert.sign(opts.issuer?.privateKey ?? keys.privateKey, "SHA-256", engine);
  return { cert, certPem: toPem(cert.toSchema().toBER(false), "CERTIFICATE"), privateKey: keys.privateKey };
}

let defaultCa: Promise<TestSigner> | undefined;

/** The shared test CA of a test process: created once, since RSA key generation is slow. */
export function testCa(): Promise<TestSigner> {
  defaultCa ??= createSigner({ commonName: "pulumi-discovery test IID CA" });
  return defaultCa;
}

/** A signer as PEM text, to hand to another process (a fleet simulator, a spawned runtime's config). */
export interface SignerPems {
  certPem: string;
  /** PKCS#8 private key. */
  keyPem: string;
}

/** Writes a signer out as PEM, so another process can sign as the same CA. */
export async function exportSigner(signer: TestSigner): Promise<SignerPems> {
  const pkcs8 = await webcrypto.subtle.exportKey("pkcs8", signer.privateKey);
  return { certPem: signer.certPem, keyPem: toPem(pkcs8, "PRIVATE KEY") };
}

/** Reads back a signer written by {@link exportSigner}. */
export async function importSigner(pems: SignerPems): Promise<TestSigner> {
  const der = (pem: string) => Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ""), "base64");
  const algorithm = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  const privateKey = await webcrypto.subtle.importKey("pkcs8", der(pems.keyPem), algorithm, true, ["sign"]);
  return { cert: pkijs.Certificate.fromBER(der(pems.certPem)), certPem: pems.certPem, privateKey };
}

/**
 * The CA whose certificate and PKCS#8 key are in `certFile` / `keyFile`, made (self-signed) on first use: it
 * survives restarts, so what it signed before, and configs naming the file, stay valid.
 */
export async function loadOrCreateCa(certFile: string, keyFile: string, commonName: string): Promise<TestSigner> {
  if (fs.existsSync(certFile) && fs.existsSync(keyFile))
    return importSigner({ certPem: fs.readFileSync(certFile, "utf8"), keyPem: fs.readFileSync(keyFile, "utf8") });
  const signer = await createSigner({ commonName });
  const pems = await exportSigner(signer);
  fs.writeFileSync(keyFile, pems.keyPem, { mode: 0o600 });
  fs.writeFileSync(certFile, pems.certPem);
  return signer;
}

/** How to bend a signed document for a refusal test; every option is off by default. */
export interface ForgeOptions {
  /** Sign with this key instead of the named signer's (the SignerInfo still names the signer). */
  signWith?: TestSigner;
  /** Certificates to put in the PKCS7 certificate bag; AWS puts none. */
  embedCerts?: TestSigner[];
  /** Replace the encapsulated content after signing, keeping the signature. */
  tamperContent?: (content: string) => string;
  /** Extra SignerInfos, each signing the same content with its own key. */
  extraSigners?: TestSigner[];
  /** Omit signed attributes, so the signature covers the content itself. */
  noSignedAttributes?: boolean;
  /** Unsigned attributes to attach to the SignerInfo, as OID to UTF-8 text (e.g. a second identity). */
  unsignedAttributes?: Record<string, string>;
  /** Wrap the base64 in `-----BEGIN PKCS7-----` armour as the AWS docs' openssl recipe does. */
  pemArmour?: boolean;
}

async function signerInfoFor(signer: TestSigner, content: Uint8Array, signed: boolean): Promise<pkijs.SignerInfo> {
  const info = new pkijs.SignerInfo({
    version: 1,
    sid: new pkijs.IssuerAndSerialNumber({ issuer: signer.cert.issuer, serialNumber: signer.cert.serialNumber }),
  });
  if (signed) {
    const digest = await webcrypto.subtle.digest("SHA-256", content);
    info.signedAttrs = new pkijs.SignedAndUnsignedAttributes({
      type: 0,
      attributes: [
        new pkijs.Attribute({ type: OID.contentType, values: [new asn1js.ObjectIdentifier({ value: OID.data })] }),
        new pkijs.Attribute({ type: OID.signingTime, values: [new asn1js.UTCTime({ valueDate: new Date() })] }),
        new pkijs.Attribute({ type: OID.messageDigest, values: [new asn1js.OctetString({ valueHex: digest })] }),
      ],
    });
  }
  return info;
}

// AWS's rsa2048 PKCS7 is streamed BER: indefinite lengths on the wrappers and the content as a constructed
// OCTET STRING. Reproducing that keeps the verifier honest about BER, not just the DER pkijs writes.
function markIndefinite(block: asn1js.AsnType): void {
  (block as asn1js.BaseBlock).lenBlock.isIndefiniteForm = true;
}

function awsShapedBer(signedData: pkijs.SignedData): ArrayBuffer {
  const sd = signedData.toSchema(true) as asn1js.Sequence;
  markIndefinite(sd);
  // SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo, ... }
  const encap = sd.valueBlock.value[2] as asn1js.Sequence;
  markIndefinite(encap);
  const explicit = encap.valueBlock.value[1] as asn1js.Constructed;
  markIndefinite(explicit);
  markIndefinite(explicit.valueBlock.value[0]);
  const wrapper = new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: [sd] });
  markIndefinite(wrapper);
  const outer = new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: OID.signedData }), wrapper] });
  markIndefinite(outer);
  return outer.toBER(false);
}

/**
 * CMS SignedData over `text` as `data` content: SHA-256 with RSA, each signer named by issuer and serial, signed
 * attributes (content type, signing time, message digest) unless `forge` says otherwise.
 */
export async function signContent(
  text: string,
  signer: TestSigner,
  forge: ForgeOptions = {},
): Promise<pkijs.SignedData> {
  const content = new Uint8Array(Buffer.from(text, "utf8"));
  const signers = [signer, ...(forge.extraSigners ?? [])];
  const signedData = new pkijs.SignedData({
    version: 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({
      eContentType: OID.data,
      eContent: new asn1js.OctetString({ valueHex: content }),
    }),
    signerInfos: await Promise.all(signers.map((s) => signerInfoFor(s, content, !forge.noSignedAttributes))),
  });
  // An empty bag would still be written as an empty [0]; AWS writes none at all.
  if (forge.embedCerts?.length) signedData.certificates = forge.embedCerts.map((s) => s.cert);
  const keys = [forge.signWith ?? signer, ...(forge.extraSigners ?? [])];
  for (const [i, key] of keys.entries()) await signedData.sign(key.privateKey, i, "SHA-256", undefined, engine);
  if (forge.unsignedAttributes) {
    signedData.signerInfos[0].unsignedAttrs = new pkijs.SignedAndUnsignedAttributes({
      type: 1,
      attributes: Object.entries(forge.unsignedAttributes).map(
        ([type, value]) => new pkijs.Attribute({ type, values: [new asn1js.Utf8String({ value })] }),
      ),
    });
  }
  if (forge.tamperContent) {
    const tampered = Buffer.from(forge.tamperContent(text), "utf8");
    signedData.encapContentInfo = new pkijs.EncapsulatedContentInfo({
      eContentType: OID.data,
      eContent: new asn1js.OctetString({ valueHex: new Uint8Array(tampered) }),
    });
  }
  return signedData;
}

/** DER `ContentInfo` wrapping `signedData`, as most signers (and Azure's IMDS) write it. */
export function signedDataDer(signedData: pkijs.SignedData): Buffer {
  const info = new pkijs.ContentInfo({ contentType: OID.signedData, content: signedData.toSchema(true) });
  return Buffer.from(info.toSchema().toBER(false));
}

/**
 * Signs an identity document as AWS does for `/latest/dynamic/instance-identity/rsa2048`: SignedData over the
 * JSON as `data` content, SHA-256 with RSA, the signer named by issuer and serial, no certificates, signed
 * attributes (content type, signing time, message digest). Returns base64 in 64-column lines, as IMDS serves it.
 */
export async function signIdentityDocument(
  doc: object | string,
  signer: TestSigner,
  forge: ForgeOptions = {},
): Promise<string> {
  const text = typeof doc === "string" ? doc : JSON.stringify(doc, null, 2);
  const signedData = await signContent(text, signer, forge);
  for (const info of signedData.signerInfos) {
    // pkijs writes sha256WithRSAEncryption; AWS writes plain rsaEncryption, which the verifier must accept too.
    info.signatureAlgorithm = new pkijs.AlgorithmIdentifier({
      algorithmId: OID.rsaEncryption,
      algorithmParams: new asn1js.Null(),
    });
  }
  const lines =
    Buffer.from(awsShapedBer(signedData))
      .toString("base64")
      .match(/.{1,64}/g) ?? [];
  const body = lines.join("\n");
  return forge.pemArmour ? `-----BEGIN PKCS7-----\n${body}\n-----END PKCS7-----\n` : body;
}

/** The fields of an EC2 instance identity document, as IMDS `/latest/dynamic/instance-identity/document` has them. */
export interface IdentityDocumentJson {
  accountId: string;
  architecture: string;
  availabilityZone: string;
  billingProducts: string[] | null;
  devpayProductCodes: string[] | null;
  marketplaceProductCodes: string[] | null;
  imageId: string;
  instanceId: string;
  instanceType: string;
  kernelId: string | null;
  pendingTime: string;
  privateIp: string | null;
  ramdiskId: string | null;
  region: string;
  version: string;
}

/** A realistic identity document; `overrides` replace fields (set one to undefined to drop it). */
export function identityDocument(
  overrides: Partial<Record<keyof IdentityDocumentJson, unknown>> = {},
): IdentityDocumentJson {
  const region = typeof overrides.region === "string" ? overrides.region : "us-east-1";
  const doc: Record<string, unknown> = {
    accountId: "123456789012",
    architecture: "x86_64",
    availabilityZone: `${region}a`,
    billingProducts: null,
    devpayProductCodes: null,
    marketplaceProductCodes: null,
    imageId: "ami-0abcdef1234567890",
    instanceId: "i-0123456789abcdef0",
    instanceType: "t3.micro",
    kernelId: null,
    // AWS writes whole seconds; a fresh document is one that was pending a moment ago.
    pendingTime: new Date(Math.floor(Date.now() / 1000) * 1000 - 5000).toISOString().replace(".000Z", "Z"),
    privateIp: "10.0.1.23",
    ramdiskId: null,
    region,
    version: "2017-09-30",
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete doc[k];
    else doc[k] = v;
  }
  return doc as unknown as IdentityDocumentJson;
}
