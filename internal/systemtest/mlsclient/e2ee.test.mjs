// End-to-end encryption against a real Parley, with real MLS (ts-mls):
// three users with two devices each make an encrypted group, talk,
// remove a member, catch up after being offline, and commit
// concurrently. The Go test that starts Parley (TestMLSClients in
// internal/systemtest) runs this file and then checks that no plaintext
// reached the log, the history store or the search index.
//
// Environment: PARLEY_URL (http://host:port), PARLEY_TOKENS (JSON: user
// -> bearer token), PARLEY_MARKER (a string every plaintext contains).

import { test } from "node:test";
import assert from "node:assert/strict";
import { Device, suite } from "./client.mjs";

const base = process.env.PARLEY_URL;
const tokens = JSON.parse(process.env.PARLEY_TOKENS ?? "{}");
const marker = process.env.PARLEY_MARKER ?? "marker";

test("three users with two devices each keep an encrypted group", { timeout: 240000 }, async (t) => {
  assert.ok(base, "PARLEY_URL is not set: run through go test ./internal/systemtest -run TestMLSClients");
  const impl = await suite();
  const devices = {};
  for (const user of ["alice", "bob", "carol"]) {
    for (const device of ["d1", "d2"]) {
      devices[`${user}/${device}`] = new Device({ base, user, device, token: tokens[user], impl });
    }
  }
  const all = Object.values(devices);
  const [a1, a2, b1, b2, c1, c2] = ["alice/d1", "alice/d2", "bob/d1", "bob/d2", "carol/d1", "carol/d2"].map((k) => devices[k]);
  const say = (d, what) => `${marker} ${what} from ${d.id}`;

  await t.test("every device publishes key packages and connects", async () => {
    for (const d of all) {
      const st = await d.publish(3);
      assert.equal(st.available, 3);
      assert.equal(st.last_resort, true);
      assert.equal(st.low, true, "3 left is under the top-up mark");
    }
    await Promise.all(all.map((d) => d.connect()));
  });

  let conv;
  await t.test("alice's first device creates the group and adds every other device", async () => {
    let created;
    ({ conv, body: created } = await a1.createGroup("Encrypted plans"));
    assert.equal(created.encrypted, true, "the conversation says it is encrypted");
    const adds = [];
    for (const user of ["alice", "bob", "carol"]) {
      for (const c of await a1.claim(user)) {
        if (!(c.user === "alice" && c.device === "d1")) adds.push(c);
      }
    }
    assert.equal(adds.length, 5);
    assert.ok(adds.every((c) => !c.lastResort), "one-time key packages were left");
    const r = await a1.commit(conv, { add: adds });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await Promise.all(all.map((d) => d.until(() => d.epoch(conv) === 1, "epoch 1")));
    for (const d of all) {
      assert.equal(d.foreignWelcomes, 0, `${d.id} got a welcome of other devices`);
    }
    for (const d of [a2, b1, b2, c1, c2]) assert.equal(d.welcomed, 1, `${d.id} joined by its welcome`);
    const st = await b1.api("GET", "/v1/devices/d1/key-packages");
    assert.equal(st.body.available, 2, "the claim took one of bob/d1's key packages");
  });

  await t.test("every device sends and every other device reads it", async () => {
    for (const d of all) {
      const r = await d.send(conv, say(d, "hello"));
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    await Promise.all(
      all.map((d) =>
        d.until(() => all.every((o) => o === d || d.texts(conv).includes(say(o, "hello"))), "everyone's hello"),
      ),
    );
  });

  await t.test("a stale epoch is refused with a typed error", async () => {
    const r = await a1.api("POST", `/v1/conversations/${conv}/mls/messages`, {
      device_id: "d1",
      epoch: 0,
      ciphertext: Buffer.from("not really").toString("base64"),
    });
    assert.equal(r.status, 409);
    assert.equal(r.body.code, "stale_epoch");
  });

  let afterRemoval;
  await t.test("bob's second device goes offline; alice removes carol, who cannot read what follows", async () => {
    await b2.disconnect();
    const r = await a1.commit(conv, { remove: [{ user: "carol", device: "d1" }, { user: "carol", device: "d2" }] });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const online = [a1, a2, b1];
    await Promise.all(online.map((d) => d.until(() => d.epoch(conv) === 2, "epoch 2")));
    await Promise.all([c1, c2].map((d) => d.until(() => d.removedFrom.has(conv), "carol's removal")));
    const members = await a1.api("GET", `/v1/conversations/${conv}`);
    assert.deepEqual(
      members.body.members.map((m) => m.user_id).sort(),
      ["alice", "bob"],
      "the commit removed carol from the conversation",
    );
    afterRemoval = await a1.send(conv, say(a1, "after carol left"));
    assert.equal(afterRemoval.status, 201);
    await b1.send(conv, say(b1, "while bob/d2 is away"));
    await a2.send(conv, say(a2, "also while bob/d2 is away"));
    await Promise.all(
      [a2, b1].map((d) => d.until(() => d.texts(conv).includes(say(a1, "after carol left")), "the message after the removal")),
    );
    for (const c of [c1, c2]) {
      await assert.rejects(c.tryDecrypt(conv, afterRemoval.ciphertext), `${c.id} decrypted a message sent after its removal`);
      assert.ok(!c.texts(conv).includes(say(a1, "after carol left")));
      const h = await c.api("GET", `/v1/conversations/${conv}/history`);
      assert.equal(h.status, 403, "a removed member reads no history");
    }
  });

  await t.test("bob's second device comes back and catches up by resume", async () => {
    await b2.connect();
    await b2.resume(conv);
    await b2.until(() => b2.epoch(conv) === 2, "epoch 2 after resume");
    await b2.until(
      () =>
        [say(a1, "after carol left"), say(b1, "while bob/d2 is away"), say(a2, "also while bob/d2 is away")].every((m) =>
          b2.texts(conv).includes(m),
        ),
      "the messages sent while offline",
    );
  });

  await t.test("two devices commit at once: the first in the log wins and everyone converges", async () => {
    const [ra, rb] = await Promise.all([a2.commit(conv), b1.commit(conv)]);
    const statuses = [ra.status, rb.status].sort();
    assert.deepEqual(statuses, [201, 409], `${ra.status} ${JSON.stringify(ra.body)} / ${rb.status} ${JSON.stringify(rb.body)}`);
    const loser = ra.status === 409 ? a2 : b1;
    assert.equal((ra.status === 409 ? ra : rb).body.code, "stale_epoch");
    const members = [a1, a2, b1, b2];
    await Promise.all(members.map((d) => d.until(() => d.epoch(conv) === 3, "epoch 3")));
    const r = await loser.send(conv, say(loser, "after losing the race"));
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await Promise.all(
      members
        .filter((d) => d !== loser)
        .map((d) => d.until(() => d.texts(conv).includes(say(loser, "after losing the race")), "the loser's message")),
    );
  });

  await t.test("bob leaves: his devices propose their removal and alice's second device commits it", async () => {
    for (const d of [b1, b2]) {
      const r = await d.proposeLeave(conv);
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    await Promise.all([a1, a2].map((d) => d.until(() => d.proposals === 2, "both proposals")));
    const r = await a2.commit(conv, { proposed: [{ user: "bob", device: "d1" }, { user: "bob", device: "d2" }] });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await Promise.all([a1, a2].map((d) => d.until(() => d.epoch(conv) === 4, "epoch 4")));
    await Promise.all([b1, b2].map((d) => d.until(() => d.removedFrom.has(conv), "bob's removal")));
    const members = await a1.api("GET", `/v1/conversations/${conv}`);
    assert.deepEqual(members.body.members.map((m) => m.user_id), ["alice"]);
    const after = await a1.send(conv, say(a1, "after bob left"));
    assert.equal(after.status, 201);
    await a2.until(() => a2.texts(conv).includes(say(a1, "after bob left")), "alice's other device reads on");
    for (const b of [b1, b2]) await assert.rejects(b.tryDecrypt(conv, after.ciphertext), `${b.id} decrypted a message sent after he left`);
  });

  await t.test("the inbox counts encrypted messages and previews none", async () => {
    const inbox = await a2.api("GET", "/v1/conversations");
    assert.equal(inbox.status, 200);
    const c = inbox.body.conversations.find((c) => c.conversation_id === conv);
    assert.ok(c, "the conversation is in alice's inbox");
    assert.equal(c.encrypted, true);
    assert.ok(c.messages >= 10, `${c.messages} messages counted`);
    assert.equal(c.last_message.body, "", "a preview of an encrypted message has no body");
  });

  await t.test("history pages ciphertext only", async () => {
    const h = await a1.api("GET", `/v1/conversations/${conv}/history?limit=200`);
    assert.equal(h.status, 200);
    const types = new Set(h.body.events.map((e) => e.event_type));
    assert.ok(types.has("chat.mls.message.sent.v1") && types.has("chat.mls.committed.v1"));
    assert.ok(!JSON.stringify(h.body).includes(marker), "plaintext in the history");
    for (const e of h.body.events.filter((e) => e.event_type === "chat.mls.committed.v1")) {
      assert.equal(e.data.welcome, undefined, "a welcome paged to a device it is not for");
    }
  });

  await Promise.all(all.map((d) => d.disconnect()));
  console.log(JSON.stringify({ conversation: conv }));
});
