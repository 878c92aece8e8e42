/**
 * Azure's attested document (IMDS `/metadata/attested/document`): a CMS SignedData over a small JSON, signed by a
 * certificate named `metadata.azure.com` (or a sovereign cloud's) that chains to Azure's public roots. The signer is
 * the certificate the SignerInfo names (issuer and serial, or key id), found by pkijs, never the bag's first
 * certificate: a bag may carry a trusted certificate beside the one that really signed (SPIRE 1.14.7).
 */
import { webcrypto } from "crypto";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { JoinRefusal } from "../../join/errors";

/** Largest attested document accepted: Azure's is about 5 KB of base64 (the signer and an intermediate). */
export const MAX_ATTESTED_CHARS = 32 * 1024;
/** Clock skew allowed on the document's `timeStamp`, in milliseconds. */
export const ATTESTED_SKEW_MS = 60_000;
/** The signer's common names: Azure's public cloud, US Government, China (21Vianet) and Germany. */
export const ATTESTED_SIGNER_NAMES = [
  "metadata.azure.com",
  "metadata.azure.us",
  "metadata.azure.cn",
  "metadata.microsoftazure.de",
] as const;

/*
 * The roots Azure's attested-data chain ends at, pinned (Azure's CA details page lists both): DigiCert Global Root
 * G2 (SHA-1 thumbprint df3c24f9bfd666761b268073fe06d1cc8d4f82a4) and Microsoft RSA Root Certificate Authority 2017
 * (73a5e64a3bff8316ff0edccc618a906e4eae4d74), verbatim from the Mozilla CA bundle.
 */
const DIGICERT_GLOBAL_ROOT_G2 = `
-----BEGIN CERTIFICATE-----
MIIDjjCCAnagAwIBAgIQAzrx5qcRqaC7KGSxHQn65TANBgkqhkiG9w0BAQsFADBh
MQswCQYDVQQGEwJVUzEVMBMGA1UEChMMRGlnaUNlcnQgSW5jMRkwFwYDVQQLExB3
d3cuZGlnaWNlcnQuY29tMSAwHgYDVQQDExdEaWdpQ2VydCBHbG9iYWwgUm9vdCBH
MjAeFw0xMzA4MDExMjAwMDBaFw0zODAxMTUxMjAwMDBaMGExCzAJBgNVBAYTAlVT
MRUwEwYDVQQKEwxEaWdpQ2VydCBJbmMxGTAXBgNVBAsTEHd3dy5kaWdpY2VydC5j
b20xIDAeBgNVBAMTF0RpZ2lDZXJ0IEdsb2JhbCBSb290IEcyMIIBIjANBgkqhkiG
9w0BAQEFAAOCAQ8AMIIBCgKCAQEAuzfNNNx7a8myaJCtSnX/RrohCgiN9RlUyfuI
2/Ou8jqJkTx65qsGGmvPrC3oXgkkRLpimn7Wo6h+4FR1IAWsULecYxpsMNzaHxmx
1x7e/dfgy5SDN67sH0NO3Xss0r0upS/kqbitOtSZpLYl6ZtrAGCSYP9PIUkY92eQ
q2EGnI/yuum06ZIya7XzV+hdG82MHauVBJVJ8zUtluNJbd134/tJS7SsVQepj5Wz
tCO7TG1F8PapspUwtP1MVYwnSlcUfIKdzXOS0xZKBgyMUNGPHgm+F6HmIcr9g+UQ
vIOlCsRnKPZzFBQ9RnbDhxSJITRNrw9FDKZJobq7nMWxM4MphQIDAQABo0IwQDAP
BgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBhjAdBgNVHQ4EFgQUTiJUIBiV
5uNu5g/6+rkS7QYXjzkwDQYJKoZIhvcNAQELBQADggEBAGBnKJRvDkhj6zHd6mcY
1Yl9PMWLSn/pvtsrF9+wX3N3KjITOYFnQoQj8kVnNeyIv/iPsGEMNKSuIEyExtv4
NeF22d+mQrvHRAiGfzZ0JFrabA0UWTW98kndth/Jsw1HKj2ZL7tcu7XUIOGZX1NG
Fdtom/DzMNU+MeKNhJ7jitralj41E6Vf8PlwUHBHQRFXGU7Aj64GxJUTFy8bJZ91
8rGOmaFvE7FBcf6IKshPECBV1/MUReXgRPTqh5Uykw7+U0b6LJ3/iyK5S9kJRaTe
pLiaWN0bfVKfjllDiIGknibVb63dDcY3fe0Dkhvld1927jyNxF1WW6LZZm6zNTfl
MrY=
-----END CERTIFICATE-----
`;

const MICROSOFT_RSA_ROOT_2017 = `
-----BEGIN CERTIFICATE-----
MIIFqDCCA5CgAwIBAgIQHtOXCV/YtLNHcB6qvn9FszANBgkqhkiG9w0BAQwFADBl
MQswCQYDVQQGEwJVUzEeMBwGA1UEChMVTWljcm9zb2Z0IENvcnBvcmF0aW9uMTYw
NAYDVQQDEy1NaWNyb3NvZnQgUlNBIFJvb3QgQ2VydGlmaWNhdGUgQXV0aG9yaXR5
IDIwMTcwHhcNMTkxMjE4MjI1MTIyWhcNNDIwNzE4MjMwMDIzWjBlMQswCQYDVQQG
EwJVUzEeMBwGA1UEChMVTWljcm9zb2Z0IENvcnBvcmF0aW9uMTYwNAYDVQQDEy1N
aWNyb3NvZnQgUlNBIFJvb3QgQ2VydGlmaWNhdGUgQXV0aG9yaXR5IDIwMTcwggIi
MA0GCSqGSIb3DQEBAQUAA4ICDwAwggIKAoICAQDKW76UM4wplZEWCpW9R2LBifOZ
Nt9GkMml7Xhqb0eRaPgnZ1AzHaGm++DlQ6OEAlcBXZxIQIJTELy/xztokLaCLeX0
ZdDMbRnMlfl7rEqUrQ7eS0MdhweSE5CAg2Q1OQT85elss7YfUJQ4ZVBcF0a5toW1
HLUX6NZFndiyJrDKxHBKrmCk3bPZ7Pw71VdyvD/IybLeS2v4I2wDwAW9lcfNcztm
gGTjGqwu+UcF8ga2m3P1eDNbx6H7JyqhtJqRjJHTOoI+dkC0zVJhUXAoP8XFWvLJ
jEm7FFtNyP9nTUwSlq31/niol4fX/V4ggNyhSyL71Imtus5Hl0dVe49FyGcohJUc
aDDv70ngNXtk55iwlNpNhTs+VcQor1fznhPbRiefHqJeRIOkpcrVE7NLP8TjwuaG
YaRSMLl6IE9vDzhTyzMMEyuP1pq9KsgtsRx9S1HKR9FIJ3Jdh+vVReZIZZ2vUpC6
W6IYZVcSn2i51BVrlMRpIpj0M+Dt+VGOQVDJNE92kKz8OMHY4Xu54+OU4UZpyw4K
UGsTuqwPN1q3ErWQgR5WrlcihtnJ0tHXUeOrO8ZV/R4O03QK0dqq6mm4lyiPSMQH
+FJDOvTKVTUssKZqwJz58oHhEmrARdlns87/I6KJClTUFLkqqNfs+avNJVgyeY+Q
W5g5xAgGwax/Dj0ApQIDAQABo1QwUjAOBgNVHQ8BAf8EBAMCAYYwDwYDVR0TAQH/
BAUwAwEB/zAdBgNVHQ4EFgQUCctZf4aycI8awznjwNnpv7tNsiMwEAYJKwYBBAGC
NxUBBAMCAQAwDQYJKoZIhvcNAQEMBQADggIBAKyvPl3CEZaJjqPnktaXFbgToqZC
LgLNFgVZJ8og6Lq46BrsTaiXVq5lQ7GPAJtSzVXNUzltYkyLDVt8LkS/gxCP81OC
gMNPOsduET/m4xaRhPtthH80dK2Jp86519efhGSSvpWhrQlTM93uCupKUY5vVau6
tZRGrox/2KJQJWVggEbbMwSubLWYdFQl3JPk+ONVFT24bcMKpBLBaYVu32TxU5nh
SnUgnZUP5NbcA/FZGOhHibJXWpS2qdgXKxdJ5XbLwVaZOjex/2kskZGT4d9Mozd2
TaGf+G0eHdP67Pv0RR0Tbc/3WeUiJ3IrhvNXuzDtJE3cfVa7o7P4NHmJweDyAmH3
pvwPuxwXC65B2Xy9J6P9LjrRk5Sxcx0ki69bIImtt2dmefU6xqaWM/5TkshGsRGR
xpl/j8nWZjEgQRCHLQzWwa80mMpkg/sTV9HB8Dx6jKXB/ZUhoHHBk2dxEuqPiApp
GWSZI1b7rCoucL5mxAyE7+WL85MB+GqQk2dLsmijtWKP6T+MejteD+eMuMZ87zf9
dOLITzNy4ZQ5bb0Sr74MTnB8G2+NszKTc0QWbej09+CVgI+WXTik9KveCjCHk9hN
AHFiRSdLOkKEW39lt2c0Ui2cFmuqqNh7o0JMcccMyj6D5KbvtwEwXlGjefVwaaZB
RA+GsCyRxj3qrg+E
-----END CERTIFICATE-----
`;

/** The pinned roots, PEM; `join.azure.extra_ca_certs` adds to them, never replaces them. */
export const AZURE_ROOT_PEMS: readonly string[] = [DIGICERT_GLOBAL_ROOT_G2, MICROSOFT_RSA_ROOT_2017];

/** What a verified attested document says; every field comes from the signed content. */
export interface AttestedDocument {
  /** The VM's unique id, lowercase. */
  vmId: string;
  /** Its subscription, lowercase. */
  subscriptionId: string;
  /** The nonce the node asked IMDS to sign: the runtime's challenge. */
  nonce: string;
  createdOn: Date;
  expiresOn: Date;
  sku?: string;
}

// An engine passed to each call rather than pkijs.setEngine(): no process-wide state.
const engine = new pkijs.CryptoEngine({ name: "node", crypto: webcrypto as never });

const OID_SIGNED_DATA = "1.2.840.113549.1.7.2";
const OID_DATA = "1.2.840.113549.1.7.1";
const OID_COMMON_NAME = "2.5.4.3";
// SHA-256, -384, -512: SHA-1 digests are refused whatever pkijs would accept.
const DIGESTS = new Set(["2.16.840.1.101.3.4.2.1", "2.16.840.1.101.3.4.2.2", "2.16.840.1.101.3.4.2.3"]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const refusal = (code: string, reason: string, status: 400 | 403 = 403) =>
  new JoinRefusal(code, `azure attested document: ${reason}`, status);
const malformed = (reason: string) => refusal("azure_attested_data_malformed", reason, 400);
const quote = (v: unknown) => (JSON.stringify(v) ?? String(v)).slice(0, 80);

/**
 * The base64 signature of `attested_data`: the IMDS answer as an object (`{encoding: "pkcs7", signature}`) or its
 * `signature` string. 400 for anything else.
 */
export function attestedSignature(attested: unknown): string {
  let sig = attested;
  if (attested !== null && typeof attested === "object" && !Array.isArray(attested)) {
    const { encoding, signature } = attested as Record<string, unknown>;
    if (encoding !== undefined && encoding !== "pkcs7") throw malformed(`encoding ${quote(encoding)} is not pkcs7`);
    sig = signature;
  }
  if (typeof sig !== "string" || sig.length === 0)
    throw malformed(
      'request field "attested_data" is required: the IMDS /metadata/attested/document answer or its signature',
    );
  if (sig.length > MAX_ATTESTED_CHARS) throw malformed(`${sig.length} characters, over ${MAX_ATTESTED_CHARS}`);
  const b64 = sig.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) throw malformed("the signature is not base64");
  return b64;
}

/** The SignedData of a signature, parsed but not verified; 400 unless it is one SignerInfo over included data. */
export function parseAttestedSignedData(b64: string): pkijs.SignedData {
  const der = new Uint8Array(Buffer.from(b64, "base64"));
  const asn1 = asn1js.fromBER(der);
  if (asn1.offset === -1 || asn1.offset !== der.byteLength) throw malformed("the signature is not one DER structure");
  let sd: pkijs.SignedData;
  try {
    const info = new pkijs.ContentInfo({ schema: asn1.result });
    if (info.contentType !== OID_SIGNED_DATA) throw malformed(`content type ${info.contentType} is not SignedData`);
    sd = new pkijs.SignedData({ schema: info.content });
  } catch (err) {
    throw err instanceof JoinRefusal ? err : malformed("the signature is not a PKCS7 SignedData");
  }
  if (sd.encapContentInfo.eContentType !== OID_DATA || !(sd.encapContentInfo.eContent instanceof asn1js.OctetString))
    throw malformed("the SignedData does not include its content as data");
  if (sd.signerInfos.length !== 1) throw malformed(`${sd.signerInfos.length} signers; Azure signs with exactly one`);
  return sd;
}

function contentOf(sd: pkijs.SignedData): Record<string, unknown> {
  const bytes = (sd.encapContentInfo.eContent as asn1js.OctetString).getValue();
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw malformed("the signed content is not JSON");
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc))
    throw malformed("the signed content is not an object");
  return doc as Record<string, unknown>;
}

// IMDS writes `MM/DD/YY HH:MM:SS -0000`.
function imdsTime(v: unknown, name: string): Date {
  const m = typeof v === "string" && /^(\d\d)\/(\d\d)\/(\d\d) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$/.exec(v);
  const t = m
    ? Date.UTC(2000 + +m[3], +m[1] - 1, +m[2], +m[4], +m[5], +m[6]) -
      (m[7] === "-" ? -1 : 1) * (+m[8] * 60 + +m[9]) * 60_000
    : NaN;
  if (Number.isNaN(t)) throw refusal("azure_attested_data_invalid", `timeStamp.${name} ${quote(v)} is not a time`);
  return new Date(t);
}

/** The identity in a signed content object; 403 for fields that are not what Azure writes. */
export function attestedIdentity(doc: Record<string, unknown>): AttestedDocument {
  const uuid = (name: string): string => {
    const v = doc[name];
    if (typeof v !== "string" || !UUID.test(v))
      throw refusal("azure_attested_data_invalid", `${name} ${quote(v)} is not a UUID`);
    return v.toLowerCase();
  };
  const ts = (doc.timeStamp ?? {}) as Record<string, unknown>;
  if (typeof doc.nonce !== "string") throw refusal("azure_nonce_mismatch", "the document carries no nonce");
  return {
    vmId: uuid("vmId"),
    subscriptionId: uuid("subscriptionId"),
    nonce: doc.nonce,
    createdOn: imdsTime(ts.createdOn, "createdOn"),
    expiresOn: imdsTime(ts.expiresOn, "expiresOn"),
    ...(typeof doc.sku === "string" && { sku: doc.sku.slice(0, 64) }),
  };
}

const certificateCache = new Map<string, pkijs.Certificate[]>();

/** The certificates of PEM texts, parsed once per distinct text. */
function certificates(pems: readonly string[]): pkijs.Certificate[] {
  return pems.flatMap((pem) => {
    let certs = certificateCache.get(pem);
    if (!certs) {
      const blocks = pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
      certs = blocks.map((b) =>
        pkijs.Certificate.fromBER(Buffer.from(b.replace(/-----[A-Z ]+-----|\s/g, ""), "base64")),
      );
      certificateCache.set(pem, certs);
    }
    return certs;
  });
}

const commonName = (cert: pkijs.Certificate): string | undefined =>
  cert.subject.typesAndValues.find((t) => t.type === OID_COMMON_NAME)?.value.valueBlock.value;

// pkijs's SignedDataVerifyError codes, as refusals: 2/3 no certificate matches the SignerInfo, 5 no chain to a
// trusted root (or a certificate outside its validity), 9/10/15 signed attributes missing or not matching.
function verifyRefusal(code: number | undefined, message: string): JoinRefusal {
  if (code === 2 || code === 3)
    return refusal("azure_untrusted_signer", "the certificate the SignerInfo names is not in the document");
  if (code === 5)
    return refusal(
      "azure_untrusted_signer",
      `the signer does not chain to Azure's roots or join.azure.extra_ca_certs (${message.slice(0, 160)})`,
    );
  if (code === 7) return refusal("azure_unsupported_algorithm", message.slice(0, 120));
  return refusal("azure_signature_invalid", `the signature does not verify: ${message.slice(0, 120)}`);
}

/** Settings of {@link verifyAttestedDocument}. */
export interface VerifyAttestedOptions {
  /** PEM CAs trusted beside {@link AZURE_ROOT_PEMS} (`join.azure.extra_ca_certs`). */
  extraCaPems: string[];
  now: Date;
}

/**
 * Verifies an attested document: the signature over the signed attributes with the message digest of the content,
 * by the certificate the SignerInfo names, chained through the bag to a pinned root or an extra CA and valid now;
 * that certificate's common name is a metadata service's; the content's time stamps hold now.
 */
export async function verifyAttestedDocument(
  attested: unknown,
  opts: VerifyAttestedOptions,
): Promise<AttestedDocument> {
  const sd = parseAttestedSignedData(attestedSignature(attested));
  const digest = sd.signerInfos[0].digestAlgorithm.algorithmId;
  if (!DIGESTS.has(digest)) throw refusal("azure_unsupported_algorithm", `digest ${digest} is not SHA-2`);
  if (!sd.signerInfos[0].signedAttrs)
    throw refusal("azure_signature_invalid", "no signed attributes: Azure signs content type, digest and time");
  const trustedCerts = certificates([...AZURE_ROOT_PEMS, ...opts.extraCaPems]);
  let result: pkijs.SignedDataVerifyResult;
  try {
    result = await sd.verify(
      { signer: 0, trustedCerts, checkChain: true, checkDate: opts.now, extendedMode: true },
      engine,
    );
  } catch (err) {
    const e = err as { code?: number; message?: string };
    throw verifyRefusal(e?.code, String(e?.message ?? err));
  }
  if (!result.signatureVerified)
    throw refusal("azure_signature_invalid", "the signature does not verify with the signing certificate");
  const name = result.signerCertificate ? commonName(result.signerCertificate) : undefined;
  if (!ATTESTED_SIGNER_NAMES.includes(name as (typeof ATTESTED_SIGNER_NAMES)[number]))
    throw refusal(
      "azure_signer_not_metadata",
      `the signer is ${quote(name ?? "(no common name)")}, not ${ATTESTED_SIGNER_NAMES.join(" or ")}`,
    );
  const doc = attestedIdentity(contentOf(sd));
  const now = opts.now.getTime();
  if (doc.expiresOn.getTime() + ATTESTED_SKEW_MS < now)
    throw refusal("azure_attested_data_expired", `it expired ${doc.expiresOn.toISOString()}; fetch a fresh one`);
  if (doc.createdOn.getTime() - ATTESTED_SKEW_MS > now)
    throw refusal("azure_attested_data_expired", `it was created ${doc.createdOn.toISOString()}, in the future`);
  return doc;
}
