// Push notifications (README, "Push notifications"): the service worker
// (/static/sw.js) shows what the server pushes while this browser has no
// socket; this module registers it and, once the user allows
// notifications, subscribes with the server's VAPID key and registers the
// subscription under this browser's device id, the one its socket names.
// What happened is in document.documentElement.dataset.push: unsupported,
// off (the server has no Web Push), ask (permission not asked yet),
// denied, registered, or failed.

function setState(state) {
  document.documentElement.dataset.push = state;
}

function b64urlBytes(s) {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

async function subscribe(api, deviceId, registration, key) {
  let sub = await registration.pushManager.getSubscription();
  if (!sub) sub = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64urlBytes(key) });
  await api.request("PUT", `/v1/devices/${encodeURIComponent(deviceId)}/push`, {
    provider: "webpush",
    subscription: sub.toJSON(),
    locale: (navigator.language || "").slice(0, 35),
  });
  setState("registered");
}

// setupPush registers the service worker and, with permission, the
// subscription; button (shown while permission has not been asked for)
// asks for it. It never throws: push is an extra.
export async function setupPush(api, deviceId, button) {
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    setState("unsupported");
    return;
  }
  try {
    const registration = await navigator.serviceWorker.register("/static/sw.js");
    const config = await api.request("GET", "/v1/push/config");
    if (!config.providers.includes("webpush") || !config.vapid_public_key) {
      setState("off");
      return;
    }
    const go = () =>
      subscribe(api, deviceId, registration, config.vapid_public_key).catch((err) => {
        // A browser without a reachable push service (headless, offline)
        // cannot subscribe: the app works on without notifications.
        console.warn("push: subscribing failed:", err);
        setState("failed");
      });
    switch (Notification.permission) {
      case "granted":
        await go();
        return;
      case "denied":
        setState("denied");
        return;
    }
    setState("ask");
    button.hidden = false;
    button.addEventListener(
      "click",
      async () => {
        button.hidden = true;
        if ((await Notification.requestPermission()) === "granted") await go();
        else setState("denied");
      },
      { once: true },
    );
  } catch (err) {
    console.warn("push: not available:", err);
    setState("failed");
  }
}
