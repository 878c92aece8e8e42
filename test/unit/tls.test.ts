import * as crypto from "crypto";
import * as https from "https";
import { AddressInfo } from "net";
import { describeCertificate, makeSelfSignedCertificate } from "../../provider/runtime/tls";

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
