/**
 * CMS SignedData (RFC 5652) read straight from its BER tree, in exactly the shape a signed identity document has:
 * the parts a verifier needs as byte views, no object tree per field. Anything else in the structure is refused
 * with the field at fault: an unexpected tag, a missing field, a trailing one, CRLs, an over-full certificate bag.
 */
import { BerError, BerNode, BerTree, contentOf, encodingOf, oidText, parseBer } from "./ber";

/** A structural error in a ContentInfo or SignedData; the reason names the field. */
export class CmsError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "CmsError";
  }
}

/** Most certificates a SignedData may carry: a signer and the intermediates up to a trusted CA. */
export const MAX_CMS_CERTIFICATES = 4;

const TAG = {
  integer: 0x02,
  octetString: 0x04,
  constructedOctetString: 0x24,
  oid: 0x06,
  sequence: 0x30,
  set: 0x31,
  context0: 0xa0,
  context1: 0xa1,
  implicitPrimitive0: 0x80,
} as const;

/** The outer ContentInfo: its content type and the element its `[0] EXPLICIT content` holds. */
export interface ContentInfo {
  tree: BerTree;
  contentType: string;
  /** The `[0]` wrapper's element. */
  wrapper: BerNode;
  content: BerNode;
}

/** One attribute of a SignerInfo: its type and its values (each a whole element). */
export interface CmsAttribute {
  type: string;
  values: BerNode[];
}

/** A SignerInfo's parts, as byte views into the document. */
export interface CmsSignerInfo {
  /** Issuer (the whole Name encoding) and serial (the INTEGER's content), or undefined for a key identifier. */
  sid?: { issuer: Uint8Array; serial: Uint8Array };
  digestAlgorithm: string;
  signatureAlgorithm: string;
  /** The signed attributes with the SET OF tag (0x31) the signature covers, and each attribute. */
  signedAttrs?: { der: Uint8Array; attributes: CmsAttribute[] };
  signature: Uint8Array;
}

/** What a verifier needs of a SignedData. */
export interface CmsSignedData {
  eContentType: string;
  /** The encapsulated content's element: an OCTET STRING, primitive or constructed; undefined when absent. */
  eContent?: BerNode;
  /** The certificates of the bag, each as its whole encoding. */
  certificates: { der: Uint8Array; node: BerNode }[];
  signerInfos: CmsSignerInfo[];
}

const fail = (reason: string): never => {
  throw new CmsError(reason);
};

function expectTag(node: BerNode | undefined, tag: number, what: string): BerNode {
  if (!node) return fail(`${what} is missing`);
  if (node.tag !== tag)
    fail(`${what} has tag 0x${node.tag.toString(16).padStart(2, "0")}, not 0x${tag.toString(16).padStart(2, "0")}`);
  return node;
}

function oid(buf: Uint8Array, node: BerNode | undefined, what: string): string {
  try {
    return oidText(buf, expectTag(node, TAG.oid, what));
  } catch (err) {
    if (err instanceof BerError) return fail(`${what}: ${err.message}`);
    throw err;
  }
}

function childCount(node: BerNode, min: number, max: number, what: string): BerNode[] {
  const n = node.children.length;
  if (n < min || n > max) fail(`${what} has ${n} fields, not ${min === max ? min : `${min} to ${max}`}`);
  return node.children;
}

function algorithm(buf: Uint8Array, node: BerNode | undefined, what: string): string {
  const seq = expectTag(node, TAG.sequence, what);
  const [id] = childCount(seq, 1, 2, what);
  return oid(buf, id, `${what} algorithm`);
}

/** Reads `der` as a ContentInfo; a BER fault throws {@link BerError}, a wrong shape {@link CmsError}. */
export function readContentInfo(der: Uint8Array): ContentInfo {
  const tree = parseBer(der);
  const root = expectTag(tree.root, TAG.sequence, "ContentInfo");
  const [type, wrapper] = childCount(root, 2, 2, "ContentInfo");
  const contentType = oid(der, type, "ContentInfo contentType");
  expectTag(wrapper, TAG.context0, "ContentInfo content");
  const [content] = childCount(wrapper, 1, 1, "ContentInfo content [0]");
  return { tree, contentType, wrapper, content };
}

function attributes(buf: Uint8Array, set: BerNode, what: string): CmsAttribute[] {
  return set.children.map((a, i) => {
    const [type, values] = childCount(expectTag(a, TAG.sequence, `${what} ${i + 1}`), 2, 2, `${what} ${i + 1}`);
    return {
      type: oid(buf, type, `${what} ${i + 1} type`),
      values: expectTag(values, TAG.set, `${what} ${i + 1} values`).children,
    };
  });
}

function signerInfo(buf: Uint8Array, node: BerNode, n: number): CmsSignerInfo {
  const what = `SignerInfo ${n}`;
  const fields = childCount(expectTag(node, TAG.sequence, what), 5, 7, what);
  let i = 0;
  expectTag(fields[i++], TAG.integer, `${what} version`);
  const sidNode = fields[i++];
  let sid: CmsSignerInfo["sid"];
  if (sidNode.tag === TAG.sequence) {
    const [issuer, serial] = childCount(sidNode, 2, 2, `${what} issuerAndSerialNumber`);
    expectTag(issuer, TAG.sequence, `${what} issuer`);
    expectTag(serial, TAG.integer, `${what} serialNumber`);
    sid = { issuer: encodingOf(buf, issuer), serial: contentOf(buf, serial) };
  } else expectTag(sidNode, TAG.implicitPrimitive0, `${what} sid`); // subjectKeyIdentifier: refused by the verifier
  const digestAlgorithm = algorithm(buf, fields[i++], `${what} digestAlgorithm`);
  let signedAttrs: CmsSignerInfo["signedAttrs"];
  if (fields[i]?.tag === TAG.context0) {
    const set = fields[i++];
    // The signature covers the attributes as a SET OF: the same bytes with the universal tag.
    const der = Buffer.from(encodingOf(buf, set));
    der[0] = TAG.set;
    signedAttrs = { der, attributes: attributes(buf, set, `${what} signed attribute`) };
  }
  const signatureAlgorithm = algorithm(buf, fields[i++], `${what} signatureAlgorithm`);
  const signature = contentOf(buf, expectTag(fields[i++], TAG.octetString, `${what} signature`));
  // Unsigned attributes are read as BER and never used: nothing outside the signature is trusted.
  if (fields[i]?.tag === TAG.context1) i++;
  if (i !== fields.length) fail(`${what} has an unexpected field ${i + 1}`);
  return { sid, digestAlgorithm, signatureAlgorithm, ...(signedAttrs && { signedAttrs }), signature };
}

/**
 * Reads the SignedData a ContentInfo holds. Indefinite lengths are accepted only where a streaming signer
 * (OpenSSL, AWS's IMDS) writes them: the ContentInfo, SignedData and encapsulated-content wrappers.
 */
export function readSignedData(info: ContentInfo): CmsSignedData {
  const buf = info.tree.buf;
  const sd = expectTag(info.content, TAG.sequence, "SignedData");
  const fields = childCount(sd, 4, 6, "SignedData");
  let i = 0;
  expectTag(fields[i++], TAG.integer, "SignedData version");
  const digests = expectTag(fields[i++], TAG.set, "SignedData digestAlgorithms");
  digests.children.forEach((d, n) => algorithm(buf, d, `SignedData digestAlgorithm ${n + 1}`));
  const encap = expectTag(fields[i++], TAG.sequence, "EncapsulatedContentInfo");
  const [typeNode, explicit] = childCount(encap, 1, 2, "EncapsulatedContentInfo");
  const eContentType = oid(buf, typeNode, "eContentType");
  let eContent: BerNode | undefined;
  if (explicit) {
    const [inner] = childCount(expectTag(explicit, TAG.context0, "eContent"), 1, 1, "eContent [0]");
    if (inner.tag !== TAG.octetString && inner.tag !== TAG.constructedOctetString)
      fail("eContent is not an OCTET STRING");
    eContent = inner;
  }
  let certificates: CmsSignedData["certificates"] = [];
  if (fields[i]?.tag === TAG.context0) {
    const bag = fields[i++].children;
    if (bag.length > MAX_CMS_CERTIFICATES)
      fail(`${bag.length} certificates; at most ${MAX_CMS_CERTIFICATES} are accepted`);
    certificates = bag.map((c, n) => ({ der: encodingOf(buf, expectTag(c, TAG.sequence, `certificate ${n + 1}`)), node: c })); // prettier-ignore
  }
  if (fields[i]?.tag === TAG.context1) fail("CRLs are not accepted");
  const infos = expectTag(fields[i++], TAG.set, "SignedData signerInfos");
  if (i !== fields.length) fail(`SignedData has an unexpected field ${i + 1}`);
  const wrappers = new Set([info.tree.root, info.wrapper, sd, encap, explicit, eContent]);
  const stray = info.tree.indefinite.find((n) => !wrappers.has(n));
  if (stray)
    fail(`an indefinite length at byte ${stray.start}; only the ContentInfo, SignedData and content wrappers may have one`); // prettier-ignore
  return { eContentType, eContent, certificates, signerInfos: infos.children.map((s, n) => signerInfo(buf, s, n + 1)) };
}

/** The issuer (whole Name encoding) and serial (INTEGER content) of a certificate's BER tree. */
export function certificateIssuerAndSerial(buf: Uint8Array, cert: BerNode): { issuer: Uint8Array; serial: Uint8Array } {
  const tbs = expectTag(cert.children[0], TAG.sequence, "tbsCertificate");
  // version is `[0] EXPLICIT` and optional (absent for v1).
  const at = tbs.children[0]?.tag === TAG.context0 ? 1 : 0;
  const serial = expectTag(tbs.children[at], TAG.integer, "certificate serialNumber");
  expectTag(tbs.children[at + 1], TAG.sequence, "certificate signature algorithm");
  const issuer = expectTag(tbs.children[at + 2], TAG.sequence, "certificate issuer");
  return { issuer: encodingOf(buf, issuer), serial: contentOf(buf, serial) };
}

/** Parses a DER certificate's issuer and serial (for trust anchors given as PEM). */
export function certificateNames(der: Uint8Array): { issuer: Uint8Array; serial: Uint8Array } {
  const tree = parseBer(der);
  return certificateIssuerAndSerial(der, expectTag(tree.root, TAG.sequence, "certificate"));
}
