/**
 * The lean DescribeInstances reader gives exactly what the AWS SDK reads from the same bytes, for every field the
 * join check, the fetcher and the stale check use; steps aside to the SDK for any answer outside the shape it reads;
 * and never reads a field from anywhere but its own path (a network interface's address is not the instance's).
 */
import { DescribeInstancesCommand, DescribeInstancesCommandOutput, EC2Client } from "@aws-sdk/client-ec2";
import { instanceXml, leanInstanceXml } from "../../bench/control-plane-ec2";
import { leanDescribeInstances, readDescribeInstances } from "../../provider/clouds/aws/describe-instances-reader";

/** An EC2 client whose every call is answered `status` and `body`, with no socket. */
function answering(body: string, status = 200, lean = true): EC2Client {
  const client = new EC2Client({
    region: "us-east-1",
    credentials: { accessKeyId: "a", secretAccessKey: "b" },
    maxAttempts: 1,
    requestHandler: {
      handle: async () => ({
        response: {
          statusCode: status,
          headers: { "content-type": "text/xml;charset=UTF-8" },
          body: Buffer.from(body),
        },
      }),
    } as never,
  });
  return lean ? leanDescribeInstances(client) : client;
}

/** The fields this project reads, as plain data. */
const fields = (o: Pick<DescribeInstancesCommandOutput, "Reservations" | "NextToken">) => ({
  next: o.NextToken,
  reservations: (o.Reservations ?? []).map((r) => ({
    owner: r.OwnerId,
    instances: (r.Instances ?? []).map((i) => ({
      id: i.InstanceId,
      state: i.State?.Name,
      profile: i.IamInstanceProfile?.Arn,
      privateDns: i.PrivateDnsName,
      publicDns: i.PublicDnsName,
      privateIp: i.PrivateIpAddress,
      publicIp: i.PublicIpAddress,
      platform: i.Platform,
      platformDetails: i.PlatformDetails,
      launch: i.LaunchTime?.toISOString(),
      tags: (i.Tags ?? []).map((t) => [t.Key, t.Value]),
    })),
  })),
});

const describe_ = (c: EC2Client) => c.send(new DescribeInstancesCommand({}));
async function bothRead(xml: string) {
  const [sdk, lean] = await Promise.all([describe_(answering(xml, 200, false)), describe_(answering(xml))]);
  return { sdk: fields(sdk), lean: fields(lean) };
}

const response = (reservations: string, next = "") =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` +
  `<requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId><reservationSet>${reservations}</reservationSet>` +
  (next ? `<nextToken>${next}</nextToken>` : "") +
  `</DescribeInstancesResponse>`;
const reservation = (owner: string, items: string) =>
  `<item><reservationId>r-1234567890abcdef0</reservationId><ownerId>${owner}</ownerId><groupSet/><instancesSet>${items}</instancesSet></item>`; // prettier-ignore
const plane = (id: number, tags: Record<string, string>) => ({
  id: `i-${id.toString(16).padStart(17, "0")}`,
  account: "123456789012",
  region: "eu-west-1",
  reservationId: "r-1",
  privateIp: `10.0.${id >> 8}.${id & 255}`,
  tags,
  launchTime: "2026-11-30T12:34:56.000Z",
});

/** AWS's full shape with what the bench's instances lack: an instance profile, public names, a platform. */
const rich = (inner = "") =>
  `<item><instanceId>i-0abc1234def567890</instanceId><instanceState><code>16</code><name>running</name></instanceState>` +
  `<privateDnsName>ip-10-1-2-3.eu-west-1.compute.internal</privateDnsName><dnsName>ec2-3-4-5-6.eu-west-1.compute.amazonaws.com</dnsName>` +
  `<launchTime>2026-11-29T08:00:00.123Z</launchTime><privateIpAddress>10.1.2.3</privateIpAddress><ipAddress>3.4.5.6</ipAddress>` +
  `<platform>windows</platform><iamInstanceProfile><arn>arn:aws:iam::123456789012:instance-profile/web</arn><id>AIPAEXAMPLE</id></iamInstanceProfile>` +
  `<networkInterfaceSet><item><ownerId>999999999999</ownerId><privateIpAddress>10.9.9.9</privateIpAddress>` +
  `<association><publicIp>9.9.9.9</publicIp><publicDnsName>evil</publicDnsName><ipOwnerId>amazon</ipOwnerId></association>` +
  `<attachment><instanceId>i-0ffffffffffffffff</instanceId></attachment><privateDnsName>ip-10-9-9-9</privateDnsName></item></networkInterfaceSet>` +
  `<tagSet><item><key>Name</key><value>web &lt;1&gt; &amp; &quot;two&quot; &apos;3&apos; &#233;&#xe9;</value></item>` +
  `<item><key>empty</key><value/></item><item><key>role</key><value></value></item></tagSet>${inner}</item>`;

describe("readDescribeInstances against the AWS SDK", () => {
  it("reads AWS's full answers (the bench control plane's) as the SDK does, the network interface's fields left alone", async () => {
    const items = Array.from({ length: 30 }, (_, k) => instanceXml(plane(k + 1, { Name: `web-${k}`, fleet: "a&b<c>" }))); // prettier-ignore
    const xml = response(reservation("123456789012", items.slice(0, 20).join("")) + reservation("210987654321", items.slice(20).join("")), "token+/=="); // prettier-ignore
    expect(readDescribeInstances(xml)).toBeDefined();
    const { sdk, lean } = await bothRead(xml);
    expect(lean).toEqual(sdk);
    expect(lean.reservations[1].owner).toBe("210987654321");
    expect(lean.reservations[0].instances[3]).toMatchObject({ privateIp: "10.0.0.4", tags: [["Name", "web-3"], ["fleet", "a&b<c>"]] }); // prettier-ignore
    expect(lean.next).toBe("token+/==");
  });

  it("reads the lean answers, an instance profile, public names, entities and character references as the SDK does", async () => {
    const xml = response(reservation("123456789012", rich() + leanInstanceXml(plane(7, { k: "v" }))));
    expect(readDescribeInstances(xml)).toBeDefined();
    const { sdk, lean } = await bothRead(xml);
    expect(lean).toEqual(sdk);
    expect(lean.reservations[0].instances[0]).toEqual({
      id: "i-0abc1234def567890",
      state: "running",
      profile: "arn:aws:iam::123456789012:instance-profile/web",
      privateDns: "ip-10-1-2-3.eu-west-1.compute.internal",
      publicDns: "ec2-3-4-5-6.eu-west-1.compute.amazonaws.com",
      privateIp: "10.1.2.3",
      publicIp: "3.4.5.6",
      platform: "windows",
      platformDetails: undefined,
      launch: "2026-11-29T08:00:00.123Z",
      tags: [
        ["Name", `web <1> & "two" '3' éé`],
        ["empty", ""],
        ["role", ""],
      ],
    });
  });

  it("reads an answer indented as moto writes it, and an empty one", async () => {
    const pretty = response(reservation("123456789012", rich()))
      .replace(/></g, ">\n    <")
      .replace(/(<(value|key|name|arn|instanceId|ipAddress|dnsName|launchTime|privateIpAddress|privateDnsName|platform|ownerId|publicIp|publicDnsName)>)\n\s*/g, "$1") // prettier-ignore
      .replace(/\n\s*(<\/(value|key|name|arn|instanceId|ipAddress|dnsName|launchTime|privateIpAddress|privateDnsName|platform|ownerId|publicIp|publicDnsName)>)/g, "$1"); // prettier-ignore
    expect(readDescribeInstances(pretty)).toBeDefined();
    const a = await bothRead(pretty);
    expect(a.lean).toEqual(a.sdk);
    const empty = response("");
    expect(readDescribeInstances(empty)).toEqual({ Reservations: [] });
    const b = await bothRead(empty);
    expect(b.lean).toEqual(b.sdk);
  });

  const aside: [string, string][] = [
    ["a comment", response(reservation("1", rich("<!-- x -->")))],
    ["CDATA", response(reservation("1", rich().replace("<key>Name</key>", "<key><![CDATA[Name]]></key>")))],
    ["text where elements belong", response(reservation("1", rich().replace("<instanceState>", "oops<instanceState>")))], // prettier-ignore
    ["an instance id given twice", response(reservation("1", rich().replace("</instanceState>", "</instanceState><instanceId>i-0ffffffffffffffff</instanceId>")))], // prettier-ignore
    ["an element inside a field", response(reservation("1", rich().replace("<ipAddress>3.4.5.6</ipAddress>", "<ipAddress><x>3</x></ipAddress>")))], // prettier-ignore
    ["attributes on an inner element", response(reservation("1", rich().replace("<ipAddress>", '<ipAddress a="1">')))], // prettier-ignore
    ["a launch time that is not RFC 3339", response(reservation("1", rich().replace("2026-11-29T08:00:00.123Z", "Sun Nov 29 2026")))], // prettier-ignore
    ["an unknown entity", response(reservation("1", rich().replace("&amp;", "&nbsp;")))],
    ["a character reference beyond 16 bits", response(reservation("1", rich().replace("&#233;", "&#x1F600;")))],
    ["end tags that do not nest", response(reservation("1", rich().replace("</attachment>", "</association>")))],
    ["another root", response("").replace(/DescribeInstancesResponse/g, "DescribeImagesResponse")],
    ["a truncated answer", response(reservation("1", rich())).slice(0, 900)],
    ["text after the root", response("") + "junk"],
  ];
  it.each(aside)("steps aside to the SDK for %s, whose result the client then gives", async (_what, xml) => {
    expect(readDescribeInstances(xml)).toBeUndefined();
    const settle = (p: Promise<DescribeInstancesCommandOutput>) =>
      p.then(
        (o) => ({ ok: fields(o) }),
        (e: Error) => ({ error: e.name }),
      );
    expect(await settle(describe_(answering(xml)))).toEqual(await settle(describe_(answering(xml, 200, false))));
  });

  it("either reads a damaged answer exactly as the SDK does or steps aside: 1,000 single-byte changes", async () => {
    const xml = response(reservation("123456789012", rich() + instanceXml(plane(9, { a: "b" }))), "next");
    let seed = 42;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const settle = (p: Promise<DescribeInstancesCommandOutput>) =>
      p.then(
        (o) => ({ ok: fields(o) }),
        () => ({ error: true }),
      );
    const intact = readDescribeInstances(xml)!;
    let read = 0;
    for (let k = 0; k < 1000; k++) {
      const at = rand(xml.length);
      const ch = "<>/&;=\"' ax"[rand(11)];
      const damaged = [xml.slice(0, at) + ch + xml.slice(at + 1), xml.slice(0, at) + xml.slice(at + 1), xml.slice(0, at) + ch + xml.slice(at)][rand(3)]; // prettier-ignore
      const lean = readDescribeInstances(damaged);
      if (!lean) continue;
      read++;
      const sdk = await settle(describe_(answering(damaged, 200, false)));
      const where = damaged.slice(Math.max(0, at - 60), at + 60);
      // Where the SDK reads it too, the same fields; where the SDK refuses it (a damaged date or number in a field
      // this project does not use), the damage changed nothing read: the fields are the undamaged answer's.
      if ("ok" in sdk) expect({ where, ...sdk }).toEqual({ where, ok: fields(lean) });
      else expect({ where, ok: fields(lean) }).toEqual({ where, ok: fields(intact) });
    }
    expect(read).toBeGreaterThan(150); // a fair share lands in text or skipped fields and is read, not stepped aside from
  });

  it("is what the client reads with: an answer the SDK refuses over a field this project does not use is read", async () => {
    const xml = response(reservation("123456789012", instanceXml(plane(5, { a: "b" })).replace(/<usageOperationUpdateTime>[^<]*/, "<usageOperationUpdateTime>not a date"))); // prettier-ignore
    await expect(describe_(answering(xml, 200, false))).rejects.toThrow();
    const lean = await describe_(answering(xml));
    expect(fields(lean).reservations[0].instances[0]).toMatchObject({
      id: "i-00000000000000005",
      privateIp: "10.0.0.5",
    });
    expect(lean.$metadata.httpStatusCode).toBe(200);
  });

  it("leaves errors to the SDK: throttling keeps its code, so it is retried, not refused", async () => {
    const body = `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>`; // prettier-ignore
    const err = await describe_(answering(body, 503)).then(
      () => undefined,
      (e: Error & { Code?: string }) => e,
    );
    expect(err?.name).toBe("RequestLimitExceeded");
    expect(err?.message).toBe("Request limit exceeded.");
  });

  it("leaves every other EC2 call's answer to the SDK", async () => {
    const { DescribeRegionsCommand } = await import("@aws-sdk/client-ec2");
    const xml = `<?xml version="1.0" encoding="UTF-8"?><DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>x</requestId><regionInfo><item><regionName>eu-west-1</regionName><regionEndpoint>ec2.eu-west-1.amazonaws.com</regionEndpoint><optInStatus>opt-in-not-required</optInStatus></item></regionInfo></DescribeRegionsResponse>`; // prettier-ignore
    const out = await answering(xml).send(new DescribeRegionsCommand({}));
    expect(out.Regions?.map((r) => r.RegionName)).toEqual(["eu-west-1"]);
  });
});
