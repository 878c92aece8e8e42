/**
 * Fresh SSH key pairs. ssh2's own `utils.generateKeyPairSync("ed25519")` writes a private key its own parser
 * refuses about once in 250 keys ("Malformed OpenSSH private key"), so keys are made by Node's crypto (sshpk's own
 * generator is pure JS and many times slower) and written by sshpk in OpenSSH's format, which ssh2, sshpk and
 * ssh-keygen all read.
 */
import { generateKeyPairSync } from "crypto";
import * as sshpk from "sshpk";

/** An Ed25519 pair: the OpenSSH private key and the `ssh-ed25519 <base64>` public line (no comment). */
export interface SshKeyPair {
  privateKey: string;
  publicKey: string;
}

/** A new Ed25519 key pair; `comment`, when given, is stored in the private key only. */
export function newEd25519KeyPair(comment?: string): SshKeyPair {
  // Seed and public point straight from the JWK export: sshpk's pkcs8 reader would derive the public point again
  // in pure JS.
  const jwk = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
  const key = new sshpk.PrivateKey({
    type: "ed25519",
    parts: [
      { name: "A", data: Buffer.from(jwk.x as string, "base64url") },
      { name: "k", data: Buffer.from(jwk.d as string, "base64url") },
    ],
  } as unknown as sshpk.PrivateKey);
  if (comment) key.comment = comment;
  const pub = key.toPublic();
  pub.comment = "";
  return {
    privateKey: key.toString("openssh"),
    publicKey: pub.toString("ssh").trim().split(/\s+/).slice(0, 2).join(" "),
  };
}
