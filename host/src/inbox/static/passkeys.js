// Passkeys in the inbox: registering one (navigator.credentials.create) and
// answering a step-up (navigator.credentials.get) before an approve or modify
// form is posted. The server makes every option and checks every answer; this
// script only converts between its JSON (base64url) and the browser's buffers.
(() => {
  "use strict";
  const fromB64u = (text) => {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  };
  const toB64u = (buffer) => {
    let bin = "";
    for (const byte of new Uint8Array(buffer)) bin += String.fromCharCode(byte);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  const withIds = (list) => (list || []).map((c) => ({ ...c, id: fromB64u(c.id) }));

  // POSTs JSON with the session's CSRF token; a refusal (problem+json)
  // becomes an Error carrying the server's words.
  const post = async (url, csrf, body) => {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(body || {}),
    });
    const type = response.headers.get("content-type") || "";
    const answer = type.includes("json") ? await response.json() : null;
    if (!response.ok) {
      throw new Error((answer && (answer.detail || answer.title)) || `refused (HTTP ${response.status})`);
    }
    return answer;
  };

  // A rejected browser prompt, in words an approver can act on.
  const promptFailure = (e) =>
    e && e.name === "NotAllowedError"
      ? "Your device did not confirm it is you (the prompt was cancelled, timed out, or could not verify you). Nothing was sent."
      : (e && e.message) || String(e);

  const register = document.getElementById("register-form");
  if (register) {
    const status = document.getElementById("register-status");
    register.addEventListener("submit", async (event) => {
      event.preventDefault();
      const csrf = register.dataset.csrf;
      try {
        status.textContent = "Asking your device to create a passkey…";
        const start = await post(register.dataset.start, csrf);
        const pk = start.options.publicKey;
        const credential = await navigator.credentials.create({
          publicKey: {
            ...pk,
            challenge: fromB64u(pk.challenge),
            user: { ...pk.user, id: fromB64u(pk.user.id) },
            excludeCredentials: withIds(pk.excludeCredentials),
          },
        });
        await post(register.dataset.finish, csrf, {
          registration_id: start.registration_id,
          label: register.elements.label.value,
          credential: {
            id: credential.id,
            rawId: toB64u(credential.rawId),
            type: credential.type,
            response: {
              attestationObject: toB64u(credential.response.attestationObject),
              clientDataJSON: toB64u(credential.response.clientDataJSON),
              transports: credential.response.getTransports ? credential.response.getTransports() : [],
            },
            extensions: credential.getClientExtensionResults(),
          },
        });
        window.location.assign("/inbox/passkeys?done=registered");
      } catch (e) {
        status.textContent = "Not added: " + promptFailure(e);
        status.classList.add("refused");
      }
    });
  }

  const stepUpStatus = document.getElementById("step-up-status");
  for (const form of document.querySelectorAll("form[data-step-up]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        if (stepUpStatus) stepUpStatus.textContent = "Asking your device to confirm it is you…";
        const challenge = await post(form.dataset.stepUp, form.dataset.csrf);
        const pk = challenge.options.publicKey;
        const credential = await navigator.credentials.get({
          publicKey: { ...pk, challenge: fromB64u(pk.challenge), allowCredentials: withIds(pk.allowCredentials) },
        });
        const r = credential.response;
        form.elements.step_up.value = JSON.stringify({
          challenge_id: challenge.challenge_id,
          credential: {
            id: credential.id,
            rawId: toB64u(credential.rawId),
            type: credential.type,
            response: {
              authenticatorData: toB64u(r.authenticatorData),
              clientDataJSON: toB64u(r.clientDataJSON),
              signature: toB64u(r.signature),
              userHandle: r.userHandle ? toB64u(r.userHandle) : null,
            },
            extensions: credential.getClientExtensionResults(),
          },
        });
        // submit() fires no submit event: the form goes as it is, once.
        form.submit();
      } catch (e) {
        if (stepUpStatus) {
          stepUpStatus.textContent = "Not approved: " + promptFailure(e);
          stepUpStatus.classList.add("refused");
        }
      }
    });
  }
})();
