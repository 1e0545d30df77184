// Parley's service worker: shows the push notifications the server sends
// while this browser has no socket open (README, "Push notifications"),
// and closes a conversation's notification when the user has read it on
// another device. The payload is the JSON the push role sends:
// {type, conversation_id, seq, sender_id, count, preview, badge}.

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

// tag names a conversation's notification: a newer one replaces it.
const tag = (conversation) => "parley-" + conversation;

function text(n) {
  const count = n.count || 1;
  if (n.preview) return count > 1 ? `${n.preview} (+${count - 1} more)` : n.preview;
  return count > 1 ? `${count} new messages` : "New message";
}

self.addEventListener("push", (event) => {
  let n;
  try {
    n = event.data ? event.data.json() : null;
  } catch {
    n = null;
  }
  if (!n || typeof n.conversation_id !== "string") return;
  if (n.type === "clear") {
    event.waitUntil(
      self.registration.getNotifications({ tag: tag(n.conversation_id) }).then((ns) => ns.forEach((x) => x.close())),
    );
    return;
  }
  if (n.type !== "message") return;
  event.waitUntil(
    self.registration.showNotification(n.sender_id || "Parley", {
      body: text(n),
      tag: tag(n.conversation_id),
      renotify: true,
      icon: "/static/icon.svg",
      data: { conversation: n.conversation_id, seq: n.seq },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      for (const w of windows) if ("focus" in w) return w.focus();
      return self.clients.openWindow("/");
    }),
  );
});
