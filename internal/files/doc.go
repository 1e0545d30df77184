// Package files is what Parley knows of shared files, whatever stores
// them: the object key of an upload, what a file store reports of an
// object, and the upload policy (size, media types) the gateway applies
// before it presigns an upload.
//
// Bytes never pass through Parley or Kafka: clients upload and download
// straight to and from an S3-compatible store through URLs the gateway
// presigns (package s3store); messages carry metadata only
// (schemas.Attachment). The embedded default store is package versitys3.
// With crypto-shredding on, SealNames seals the one piece of content a
// store keeps, the name of an upload, with its uploader's data key.
//
// The package has no state and is safe for concurrent use.
package files
