import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { InstanceIdentity, verifyInstanceIdentity } from "../../provider/clouds/aws/attest-ec2";
import { JoinRefusal } from "../../provider/join/errors";
import * as iidSigner from "../fixtures/iid-signer";
import { identityDocument as doc, signIdentityDocument, TestSigner } from "../fixtures/iid-signer";
import { REAL_AWS_IIDS } from "../fixtures/aws-real-iids";

// How the PKCS7 itself is read: every encoding the reader does not expect is refused, with the field at fault.
// The cases are built with pkijs/asn1js, independently of the reader under test.

const SIGNED_DATA = "1.2.840.113549.1.7.2";
const b64 = (bytes: ArrayBuffer | Uint8Array) => Buffer.from(new Uint8Array(bytes)).toString("base64");
const contextTag = (tagNumber: number, value: asn1js.AsnType[]) =>
  new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber }, value });

function refusal(fn: () => unknown): JoinRefusal {
  try {
    fn();
  } catch (err) {
    if (err instanceof JoinRefusal) return err;
    throw err;
  }
  throw new Error("accepted");
}

describe("the PKCS7 encoding of an instance identity document", () => {
  let ca: TestSigner;
  const opts = () => ({ extraCaPems: [ca.certPem], now: new Date(), ttlMs: 5 * 60_000 });
  const verify = (iid: string) => verifyInstanceIdentity(iid, opts());
  beforeAll(async () => {
    ca = await iidSigner.testCa();
  });

  // A DER ContentInfo over a SignedData the test may edit first (schema = the SignedData SEQUENCE).
  async function edited(edit: (sd: asn1js.Sequence) => void, forge: iidSigner.ForgeOptions = {}): Promise<string> {
    const signed = await iidSigner.signContent(JSON.stringify(doc()), ca, forge);
    const schema = signed.toSchema(true) as asn1js.Sequence;
    edit(schema);
    return b64(new pkijs.ContentInfo({ contentType: SIGNED_DATA, content: schema }).toSchema().toBER(false));
  }
  const fields = (sd: asn1js.Sequence) => sd.valueBlock.value;
  const signerInfo = (sd: asn1js.Sequence) =>
    ((fields(sd).at(-1) as asn1js.Set).valueBlock.value[0] as asn1js.Sequence).valueBlock.value;

  it("accepts the DER a non-streaming signer writes, as well as AWS's streamed BER", async () => {
    expect(verify(await edited(() => undefined)).instanceId).toBe(doc().instanceId);
    expect(verify(await signIdentityDocument(doc(), ca)).instanceId).toBe(doc().instanceId);
  });

  const der = async () => Buffer.from(await edited(() => undefined), "base64");
  // DER's root is `30 82 hi lo`: rewritten to exercise the length forms.
  const cases: [string, () => Promise<Uint8Array | string>, ...string[]][] = [
    [
      "a length not in its shortest form",
      async () => {
        const d = await der();
        return Buffer.concat([Buffer.from([0x30, 0x83, 0x00]), d.subarray(2)]);
      },
      "not a BER-encoded PKCS7 structure",
      "shortest form at byte 0",
    ],
    [
      "a length longer than the data",
      async () => {
        const d = await der();
        d.writeUInt16BE(d.readUInt16BE(2) + 1, 2);
        return d;
      },
      "length runs past its parent at byte 0",
    ],
    [
      "a length of 5 bytes",
      async () => Buffer.concat([Buffer.from([0x30, 0x85, 0, 0, 0, 0x01, 0x00]), Buffer.alloc(256)]),
      "a 5-byte length",
    ],
    ["an indefinite length on a primitive element", async () => Buffer.from([0x04, 0x80, 0, 0]), "primitive"],
    ["an indefinite length never closed", async () => Buffer.from([0x30, 0x80, 0x02, 0x01, 0x01]), "end-of-contents"],
    ["a multi-byte tag number", async () => Buffer.from([0x1f, 0x81, 0x01, 0x00]), "multi-byte tag"],
    [
      "nesting 40 deep",
      async () => Buffer.concat([Buffer.from("3080".repeat(40), "hex"), Buffer.alloc(80)]),
      "nesting deeper than 32",
    ],
    [
      "an indefinite length inside the SignerInfo",
      () =>
        edited((sd) => {
          const infos = fields(sd).at(-1) as asn1js.Set;
          (infos.valueBlock.value[0] as asn1js.Sequence).lenBlock.isIndefiniteForm = true;
        }),
      "SignedData does not parse",
      "only the ContentInfo, SignedData and content wrappers may have one",
    ],
    [
      "a signature that is a BIT STRING",
      () =>
        edited((sd) => {
          const info = signerInfo(sd);
          info[info.length - 1] = new asn1js.BitString({ valueHex: new Uint8Array(256) });
        }),
      "SignerInfo 1 signature has tag 0x03, not 0x04",
    ],
    [
      "a field after the signer infos",
      () => edited((sd) => fields(sd).push(new asn1js.Integer({ value: 1 }))),
      "SignedData has an unexpected field 5",
    ],
    [
      "a field after a SignerInfo's signature",
      () => edited((sd) => signerInfo(sd).push(new asn1js.Integer({ value: 1 }))),
      "SignerInfo 1 has an unexpected field 7",
    ],
    [
      "CRLs",
      () => edited((sd) => fields(sd).splice(-1, 0, contextTag(1, [new asn1js.Sequence()]))),
      "CRLs are not accepted",
    ],
    [
      "an attribute certificate in the certificate bag",
      () => edited((sd) => fields(sd).splice(-1, 0, contextTag(0, [contextTag(1, [])]))),
      "certificate 1 has tag 0xa1, not 0x30",
    ],
    [
      "a content type that is not an OBJECT IDENTIFIER",
      () => edited((sd) => ((fields(sd)[2] as asn1js.Sequence).valueBlock.value[0] = new asn1js.Null())),
      "eContentType has tag 0x05",
    ],
  ];

  it.each(cases)("refuses %s as malformed, naming the fault", async (_name, build, ...words) => {
    const input = await build();
    const r = refusal(() => verify(typeof input === "string" ? input : b64(input)));
    expect({ code: r.code, status: r.status }).toEqual({ code: "iid_malformed", status: 400 });
    for (const w of words) expect(r.reason).toContain(w);
  });

  it("refuses more certificates than a chain needs", async () => {
    const bag = await Promise.all([1, 2, 3, 4, 5].map((n) => iidSigner.createSigner({ commonName: `bag ${n}` })));
    const iid = await signIdentityDocument(doc(), ca, { embedCerts: bag });
    const err = refusal(() => verify(iid));
    expect([err.code, err.status]).toEqual(["iid_malformed", 400]);
    expect(err.reason).toContain("5 certificates; at most 4 are accepted");
  });

  it("refuses a signer named by key identifier: AWS names it by issuer and serial", async () => {
    const iid = await edited((sd) => {
      signerInfo(sd)[1] = new asn1js.Primitive({
        idBlock: { tagClass: 3, tagNumber: 0 },
        valueHex: new Uint8Array(20),
      });
    });
    const r = refusal(() => verify(iid));
    expect([r.code, r.status]).toEqual(["iid_untrusted_signer", 403]);
    expect(r.reason).toContain("named by issuer and serial number");
  });

  it("no single-byte change to a signed document yields another identity, and every refusal is a JoinRefusal", async () => {
    const original = Buffer.from(await signIdentityDocument(doc(), ca), "base64");
    const expected: InstanceIdentity = verify(b64(original));
    let accepted = 0;
    for (let i = 0; i < original.length; i++) {
      for (const flip of [0x01, 0x80]) {
        const bent = Buffer.from(original);
        bent[i] ^= flip;
        try {
          expect(verify(b64(bent))).toEqual(expected);
          accepted++; // bytes outside the signature: the version numbers, the SignedData's digestAlgorithms list
        } catch (err) {
          if (!(err instanceof JoinRefusal)) throw new Error(`byte ${i} ^ ${flip}: ${String(err)}`);
        }
      }
    }
    // Most bytes are signed or structural: a change there is refused.
    expect(accepted).toBeLessThan(original.length / 4);
  });

  it("every truncation of a signed document is refused as malformed", async () => {
    const original = Buffer.from(await signIdentityDocument(doc(), ca), "base64");
    for (let n = 1; n < original.length; n++) {
      const r = refusal(() => verify(b64(original.subarray(0, n))));
      expect(r.code).toBe("iid_malformed");
    }
  });
});

describe("identity documents AWS itself signed", () => {
  const at = (pendingTime: string) => ({
    extraCaPems: [],
    now: new Date(Date.parse(pendingTime) + 60_000),
    ttlMs: 5 * 60_000,
  });

  it.each(REAL_AWS_IIDS)("verifies $instanceId ($region) against AWS's embedded certificate", (real) => {
    const id = verifyInstanceIdentity(real.pkcs7, at(real.pendingTime));
    expect(id).toMatchObject({ accountId: real.accountId, region: real.region, instanceId: real.instanceId });
    expect(id.pendingTime.toISOString()).toBe(real.pendingTime);
  });

  it("refuses one of them with a byte of its signed content changed", () => {
    const real = REAL_AWS_IIDS[0];
    const der = Buffer.from(real.pkcs7.replace(/\s+/g, ""), "base64");
    const at0 = der.indexOf(Buffer.from('"t2.medium"'));
    der[at0 + 2] = "3".charCodeAt(0); // t3.medium
    const err = refusal(() => verifyInstanceIdentity(der.toString("base64"), at(real.pendingTime)));
    expect(err.code).toBe("iid_signature_invalid");
  });

  it("refuses one edited to name another region: that region's certificate is not its signer", () => {
    const real = REAL_AWS_IIDS[1];
    const der = Buffer.from(real.pkcs7.replace(/\s+/g, ""), "base64");
    const text = Buffer.from('"region" : "us-west-1"');
    der.set(Buffer.from('"region" : "us-west-2"'), der.indexOf(text));
    expect(refusal(() => verifyInstanceIdentity(der.toString("base64"), at(real.pendingTime))).code).toBe(
      "iid_untrusted_signer",
    );
  });
});
