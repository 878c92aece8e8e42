import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, sign } from "crypto";
import * as fs from "fs";

/** The issuer Google writes in identity tokens; the sandbox's fake issuer uses it too (SPEC §2). */
export const GOOGLE_ISSUER = "https://accounts.google.com";

/** One key of a JWKS, as Google's `oauth2/v3/certs` lists them. */
export interface IssuerJwk {
  kty: "RSA";
  n: string;
  e: string;
  kid: string;
  alg: "RS256";
  use: "sig";
}

/** The sandbox's fake Google OIDC issuer: a key that signs identity tokens and the JWKS that lists it. */
export interface GcpIssuer {
  kid: string;
  /** The public key, to verify the issuer's own tokens. */
  publicKey: KeyObject;
  jwks: { keys: IssuerJwk[] };
  /** An RS256 JWT of `claims`, with `iss` set to the issuer's (by default {@link GOOGLE_ISSUER}). */
  sign(claims: Record<string, unknown>): string;
}

/** RFC 7638: SHA-256 over the required members in lexical order, base64url. */
export function rsaThumbprint(jwk: { e: string; n: string }): string {
  const canonical = JSON.stringify({ e: jwk.e, kty: "RSA", n: jwk.n });
  return createHash("sha256").update(canonical).digest("base64url");
}

const b64json = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

/**
 * The issuer whose key is in `file` (PKCS#8 PEM), made on first use so tokens survive a sandbox restart; its
 * tokens' `iss` is `iss` (Google's by default; the Azure sandbox passes its tenant's Entra ID issuer).
 */
export function loadOrCreateIssuer(file: string, iss: string = GOOGLE_ISSUER): GcpIssuer {
  let key: KeyObject;
  if (fs.existsSync(file)) key = createPrivateKey(fs.readFileSync(file, "utf8"));
  else {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    fs.writeFileSync(file, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    key = privateKey;
  }
  const pub = key.export({ format: "jwk" }) as { n: string; e: string };
  const kid = rsaThumbprint(pub);
  return {
    kid,
    publicKey: createPublicKey(key),
    jwks: { keys: [{ kty: "RSA", n: pub.n, e: pub.e, kid, alg: "RS256", use: "sig" }] },
    sign(claims) {
      const input = `${b64json({ alg: "RS256", kid, typ: "JWT" })}.${b64json({ ...claims, iss })}`;
      return `${input}.${sign("sha256", Buffer.from(input), key).toString("base64url")}`;
    },
  };
}
