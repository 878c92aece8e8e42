/**
 * The SSM check a pass makes before any SendCommand: the matcher's document exists in the account and region of
 * the instances. SSM documents are regional, so a custom document created in one region is missing in the next
 * (Teleport's users meet this as a SendCommand failure per instance, after the fact). One DescribeDocument per
 * account × region × document in a pass, through the pass's memo.
 */
import { DescribeDocumentCommand } from "@aws-sdk/client-ssm";
import { DEFAULT_SSM_DOCUMENT, type AwsMatcher } from "../../model";
import type { EnrollContext } from "../../enroll/clouds";
import { NOTHING_SENT } from "../../enroll/preflight";
import type { Candidate, InstallOutcome } from "../../enroll/types";
import { errName, ssmCall, ssmClient, SsmClientOptions, SsmRetry } from "./ssm-client";

/**
 * Whether an SSM document exists in an account and region: true, false when SSM says it does not, undefined when
 * it could not tell (credentials, denied, throttled past the retries): then the install goes ahead and
 * SendCommand's own answer is the outcome.
 */
export type DocumentExists = (account: string, region: string, document: string) => Promise<boolean | undefined>;

/** What the document check needs besides the candidates. */
export interface SsmDocumentCheck {
  matcher: AwsMatcher;
  exists: DocumentExists;
  /** The pass's memo (EnrollContext.once); without one every call asks. */
  once?: EnrollContext["once"];
}

/** {@link DocumentExists} with ssm:DescribeDocument, through the matcher's credentials. */
export function describeDocument(client?: SsmClientOptions, retry: SsmRetry = {}): DocumentExists {
  return async (account, region, document) => {
    const ssm = ssmClient(client, account, region);
    try {
      await ssm.credentials?.();
      await ssmCall(retry, () => ssm.client.send(new DescribeDocumentCommand({ Name: document })));
      return true;
    } catch (e) {
      return errName(e) === "InvalidDocument" ? false : undefined;
    } finally {
      ssm.client.destroy();
    }
  };
}

/** A failed outcome for every candidate whose account and region lack the matcher's SSM document. */
export async function missingSsmDocuments(candidates: Candidate[], req: SsmDocumentCheck): Promise<InstallOutcome[]> {
  const document = req.matcher.ssm.document_name;
  // AWS owns AWS-RunShellScript in every region: nothing to check.
  if (document === DEFAULT_SSM_DOCUMENT || candidates.length === 0) return [];
  const once = req.once ?? (<T>(_key: string, fn: () => Promise<T>) => fn());
  const scopes = [...new Set(candidates.map((c) => `${c.account}/${c.region}`))];
  const missing = new Set<string>();
  await Promise.all(
    scopes.map(async (scope) => {
      const [account, region] = scope.split("/");
      const exists = await once(`aws/ssm-document/${scope}/${document}`, () => req.exists(account, region, document));
      if (exists === false) missing.add(scope);
    }),
  );
  return candidates
    .filter((c) => missing.has(`${c.account}/${c.region}`))
    .map((c) => ({
      instanceId: c.instanceId,
      account: c.account,
      region: c.region,
      status: "failed",
      failureClass: "ssm-document-missing",
      reason: `SSM document ${JSON.stringify(document)} does not exist in account ${c.account}, region ${c.region}`,
      remediation:
        `create ${JSON.stringify(document)} in account ${c.account}, region ${c.region} (SSM documents are ` +
        `regional: one in every region the matcher scans; e.g. aws.SsmInstallerDocument with region ` +
        `"${c.region}"), or set the matcher's ssm.document_name to ${DEFAULT_SSM_DOCUMENT}, which every region ` +
        `has; ${NOTHING_SENT}`,
    }));
}
