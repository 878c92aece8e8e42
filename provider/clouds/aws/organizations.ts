import { DescribeAccountCommand, OrganizationsClient } from "@aws-sdk/client-organizations";
import type { DescribeAccount } from "./attest-iam";

/**
 * The organization an account belongs to, read with organizations:DescribeAccount using the runtime's own
 * credentials (the API answers only in the organization's management account or a delegated administrator).
 */
export function organizationsDescribeAccount(
  client = new OrganizationsClient({ region: "us-east-1" }),
): DescribeAccount {
  return async (accountId) => {
    const r = await client.send(new DescribeAccountCommand({ AccountId: accountId }));
    // arn:aws:organizations::<management>:account/o-xxxxxxxxxx/<account>
    return /:account\/(o-[a-z0-9]{10,32})\//.exec(r.Account?.Arn ?? "")?.[1];
  };
}
