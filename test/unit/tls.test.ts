import * as crypto from "crypto";
import * as https from "https";
import { AddressInfo } from "net";
import * as asn1js from "asn1js";
import { describeCertificate, makeSelfSignedCertificate, serialBytes } from "../../provider/runtime/tls";

describe("the runtime's self-signed certificate", () => {
  it("is valid for the given hosts and serves TLS that a client trusting it accepts", async () => {
    const made = await makeSelfSignedCertificate("discovery.local", ["127.0.0.1", "discovery.local"]);
    const x509 = new crypto.X509Certificate(made.cert);
    expect(x509.subjectAltName).toContain("IP Address:127.0.0.1");
    expect(x509.subjectAltName).toContain("DNS:discovery.local");
    expect(x509.checkPrivateKey(crypto.createPrivateKey(made.key))).toBe(true);
    const { fingerprint, publicKeyPin } = describeCertificate(made.cert);
    expect(fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(publicKeyPin).toMatch(/^sha256\/\/[A-Za-z0-9+/]{43}=$/);

    const srv = https.createServer({ cert: made.cert, key: made.key }, (_q, r) => r.end("ok"));
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as AddressInfo).port;
    const get = (ca?: string) =>
      new Promise<string>((resolve, reject) =>
        https
          .get({ host: "127.0.0.1", port, ca, path: "/" }, (res) => {
            let body = "";
            res.on("data", (d) => (body += d));
            res.on("end", () => resolve(body));
          })
          .on("error", reject),
      );
    try {
      expect(await get(made.cert)).toBe("ok");
      await expect(get(undefined)).rejects.toThrow(/self.signed/);
    } finally {
      srv.close();
    }
  });
});

describe("certificate serial numbers", () => {
  // The bytes that made one certificate in 256 unreadable: a first byte 0x00 before one below 0x80 is a
  // non-minimal DER integer, which OpenSSL refuses ("illegal padding").
  const worst = [
    [0x00, 0x05],
    [0x80, 0x05],
    [0x00, 0xff],
    [0xff, 0xff],
  ];
  it.each(worst)("from random first bytes %i and %i: positive, minimal DER, 16 bytes", (a, b) => {
    const random = Uint8Array.from([a, b, ...crypto.randomBytes(14)]);
    const serial = serialBytes(random);
    expect(serial).toHaveLength(16);
    expect(serial[0]).toBeGreaterThan(0);
    expect(serial[0]).toBeLessThan(0x80);
    expect([...serial.slice(1)]).toEqual([...random.slice(1)]);
    const der = new Uint8Array(new asn1js.Integer({ valueHex: serial }).toBER());
    expect([...der.slice(0, 2)]).toEqual([0x02, 16]); // INTEGER of 16 bytes: no padding byte added or needed
  });

  it("make certificates OpenSSL reads, every time", async () => {
    for (let i = 0; i < 512; i++) {
      const made = await makeSelfSignedCertificate("discovery.local", ["127.0.0.1"]);
      expect(() => new crypto.X509Certificate(made.cert)).not.toThrow();
    }
  });
});
