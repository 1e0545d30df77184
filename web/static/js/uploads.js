// Sending files (README, "Sharing files"): the bytes never pass through
// Parley. For each file the client computes its SHA-256, asks the gateway
// for an upload (POST …/uploads: name, size, media type, SHA-256), PUTs
// the bytes straight to the file store at the presigned URL with exactly
// the headers the answer lists, and then names the upload in the
// message's attachments. The store refuses any other bytes.

// Upload is one file on its way to the store. Its state goes
// "hashing" → "uploading" → "done", or ends "failed" (error says why) or
// "cancelled". loaded/total measure the PUT, for a progress bar.
export class Upload {
  constructor(file, onChange) {
    this.key = `f${++Upload.seq}`;
    this.file = file;
    this.name = file.name || "file";
    this.size = file.size;
    this.contentType = file.type || "application/octet-stream";
    this.state = "hashing";
    this.loaded = 0;
    this.total = file.size;
    this.error = "";
    this.attachment = null; // {upload_id, name, size, content_type, sha256} once done
    this.onChange = onChange;
    this.xhr = null;
  }

  // start runs the upload in the conversation through api; it never
  // rejects: the outcome is the state.
  async start(api, conversation) {
    try {
      const sha256 = await sha256Hex(this.file);
      if (this.state === "cancelled") return;
      const up = await api.startUpload(conversation, { name: this.name, size: this.size, content_type: this.contentType, sha256 });
      if (this.state === "cancelled") return;
      this.set("uploading");
      await this.put(up);
      this.attachment = { upload_id: up.upload_id, name: this.name, size: this.size, content_type: this.contentType, sha256 };
      this.set("done");
    } catch (err) {
      if (this.state === "cancelled") return;
      this.error = err.message || String(err);
      this.set("failed");
    }
  }

  // put sends the file to the presigned URL. A browser sets Content-Length
  // itself (from the body) and may not be given it; every other header is
  // the answer's, as signed.
  put(up) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open(up.method || "PUT", up.url);
      for (const [k, v] of Object.entries(up.headers || {})) {
        if (k.toLowerCase() !== "content-length") xhr.setRequestHeader(k, v);
      }
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) {
          this.loaded = e.loaded;
          this.total = e.total;
          this.onChange(this);
        }
      });
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          this.loaded = this.total;
          resolve();
        } else {
          reject(new Error(`the file store refused the file (${xhr.status}${storeError(xhr.responseText)})`));
        }
      });
      xhr.addEventListener("error", () => reject(new Error("the file store could not be reached")));
      xhr.addEventListener("abort", () => reject(new Error("cancelled")));
      xhr.send(this.file);
    });
  }

  // cancel stops the upload wherever it is; the store deletes an upload
  // no message names (PARLEY_UPLOAD_TTL).
  cancel() {
    if (this.state === "done" || this.state === "failed") return;
    this.set("cancelled");
    this.xhr?.abort();
  }

  set(state) {
    this.state = state;
    this.onChange(this);
  }

  get percent() {
    return this.total > 0 ? Math.floor((100 * this.loaded) / this.total) : this.state === "done" ? 100 : 0;
  }
}
Upload.seq = 0;

// sha256Hex is the file's SHA-256 as 64 hex digits, computed in the
// browser (Web Crypto, which needs a secure context: https, or http on
// localhost).
export async function sha256Hex(file) {
  if (!crypto.subtle) throw new Error("this page is not a secure context (https), so it cannot hash files");
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// storeError picks the Code of an S3 error document, for the message.
function storeError(xml) {
  const m = /<Code>([^<]{1,64})<\/Code>/.exec(xml || "");
  return m ? `: ${m[1]}` : "";
}

// isThumbnailed: the media types the server makes thumbnails of.
export function isThumbnailed(contentType) {
  return ["image/jpeg", "image/png", "image/gif"].includes(contentType);
}

// sizeText is a size for people: 980 B, 12.3 KB, 4.1 MB.
export function sizeText(n) {
  if (n < 1000) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n;
  let u = -1;
  do {
    v /= 1000;
    u++;
  } while (v >= 1000 && u < units.length - 1);
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}
