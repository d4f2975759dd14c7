// GraphiQL in a real browser, offline: headless Chromium loads the gateway's GraphiQL
// with every request not to the gateway's own loopback address blocked, picks a dev
// token, runs the query given in the URL, and reports what the response pane shows.
// `node graphiql.mjs <page url, the query in its fragment> <role button> [chromium path]`
// Prints {"blocked": [...], "response": "...", "headers": "..."} as JSON.
import { chromium } from "playwright-core";

const [pageUrl, role, executable = process.env.CHROMIUM || "/usr/bin/chromium"] =
  process.argv.slice(2);
const own = new URL(pageUrl).host;
const browser = await chromium.launch({
  executablePath: executable,
  headless: true,
  args: ["--no-sandbox"],
});
const blocked = [];
try {
  const page = await browser.newPage();
  await page.route("**/*", (route) => {
    const target = new URL(route.request().url());
    if (target.host === own || target.protocol === "data:") return route.continue();
    blocked.push(route.request().url());
    return route.abort();
  });
  await page.goto(pageUrl);
  await page.getByRole("button", { name: role, exact: true }).click();
  await page.locator(".graphiql-execute-button").click();
  const response = page.locator(".graphiql-response");
  await response.getByText('"data"').waitFor({ timeout: 20000 });
  const headers = await page.locator(".graphiql-editor-tool .graphiql-editor").last().innerText();
  // The editors render indentation as no-break spaces.
  const text = (await response.innerText()).replace(/\u00a0/g, " ");
  process.stdout.write(JSON.stringify({ blocked, response: text, headers }));
} finally {
  await browser.close();
}
