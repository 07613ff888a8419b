// A real OpenID Connect provider for the inbox tests: npm `oidc-provider`
// with its built-in login form, one confidential client, and the people
// given in the JSON file named by argv[2]:
//   {"client_id", "client_secret", "redirect_uri",
//    "accounts": {"LOGIN": {"email", "email_verified", "name", "groups"}}}
// Prints {"issuer": "http://127.0.0.1:PORT"} once it listens.
//
// Test hook: POST /__test/tamper {"aud": "..."} or {"nonce": "..."} makes
// the next token response carry an ID token with that claim replaced,
// re-signed with the provider's own key: a token a relying party must
// refuse on its claims, not its signature.
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import Provider from "oidc-provider";

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const { privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "test-key", use: "sig", alg: "RS256" };

let tamper = null;
const server = http.createServer();
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.client_id,
    client_secret: config.client_secret,
    redirect_uris: [config.redirect_uri],
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: ["inbox-test-cookie-key"] },
  pkce: { required: () => true },
  scopes: ["openid", "email", "profile", "groups"],
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"], groups: ["groups"] },
  // Scope claims in the ID token itself, as many company providers do.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const account = config.accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...account };
      },
    };
  },
  // First-party client: no consent screen.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope("openid email profile groups");
    grant.addOIDCClaims(["sub", "email", "email_verified", "name", "groups"]);
    await grant.save();
    return grant;
  },
});

function resign(idToken, change) {
  const [, payload] = idToken.split(".");
  const claims = { ...JSON.parse(Buffer.from(payload, "base64url")), ...change };
  const head = Buffer.from(JSON.stringify({ alg: "RS256", kid: jwk.kid, typ: "JWT" })).toString("base64url");
  const body = Buffer.from(JSON.stringify(claims)).toString("base64url");
  const signature = crypto.sign("sha256", Buffer.from(`${head}.${body}`), privateKey).toString("base64url");
  return `${head}.${body}.${signature}`;
}

provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === "/token" && tamper && ctx.body && ctx.body.id_token) {
    ctx.body = { ...ctx.body, id_token: resign(ctx.body.id_token, tamper) };
    tamper = null;
  }
});

const callback = provider.callback();
server.on("request", (req, res) => {
  if (req.method === "POST" && req.url === "/__test/tamper") {
    let text = "";
    req.on("data", (chunk) => { text += chunk; });
    req.on("end", () => {
      tamper = JSON.parse(text);
      res.writeHead(204).end();
    });
    return;
  }
  callback(req, res);
});
console.log(JSON.stringify({ issuer }));
