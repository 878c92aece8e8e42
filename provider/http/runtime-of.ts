import * as fs from "fs";
import * as path from "path";
import type { RuntimeConfig } from "../runtime/config";
import { describeCertificate } from "../runtime/tls";

/** The runtime a config names: its URL, admin token, TLS certificate and public-key pin. */
export function runtimeOf(config: RuntimeConfig) {
  const certFile = config.tls?.certFile ?? path.join(config.dataDir, "tls.crt");
  if (!fs.existsSync(certFile))
    throw new Error(`${certFile} does not exist: start the runtime (discovery serve) first`);
  if (!fs.existsSync(config.adminTokenFile))
    throw new Error(`${config.adminTokenFile} does not exist: start the runtime first`);
  return {
    target: {
      server: config.publicAddr,
      adminToken: fs.readFileSync(config.adminTokenFile, "utf8").trim(),
      caFile: certFile,
    },
    endpoint: {
      proxyAddr: config.publicHostPort,
      caPin: describeCertificate(fs.readFileSync(certFile, "utf8")).publicKeyPin,
    },
  };
}
