// Package s3store is the file store on any S3-compatible service (AWS S3,
// Ceph RGW, SeaweedFS, Garage, R2, versitygw…) through aws-sdk-go-v2,
// with path-style addressing and a configurable endpoint.
//
// It presigns uploads (PUT) and downloads (GET) with SigV4, so bytes go
// straight between clients and the store, and reads what the store says
// of an object (HEAD) so the gateway can check an upload before a
// message names it.
//
// A Store is safe for concurrent use.
package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/parley-chat/parley/internal/files"
)

// Config configures a Store.
type Config struct {
	// Endpoint is the S3 API's base URL, e.g. http://127.0.0.1:7070 or
	// https://s3.eu-west-1.amazonaws.com. Required.
	Endpoint string
	// PublicEndpoint is the base URL clients reach the store at, which
	// presigned URLs name (the host is signed). Default: Endpoint.
	PublicEndpoint string
	// Region is the SigV4 signing region. Default: us-east-1.
	Region string
	// Bucket holds every object. Required.
	Bucket string
	// AccessKey and SecretKey are the credentials. Required.
	AccessKey, SecretKey string
	// HTTPClient makes the store's requests. Default: a client with a
	// 30s timeout.
	HTTPClient *http.Client
}

// Store is a file store on an S3 bucket.
type Store struct {
	bucket  string
	client  *s3.Client
	presign *s3.PresignClient
}

// New returns a Store; it does not contact the service.
func New(cfg Config) (*Store, error) {
	var errs []error
	if cfg.Endpoint == "" {
		errs = append(errs, errors.New("s3store: no endpoint"))
	}
	if cfg.Bucket == "" {
		errs = append(errs, errors.New("s3store: no bucket"))
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		errs = append(errs, errors.New("s3store: no credentials"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.PublicEndpoint == "" {
		cfg.PublicEndpoint = cfg.Endpoint
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	opts := func(endpoint string) s3.Options {
		return s3.Options{
			Region:       cfg.Region,
			Credentials:  credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
			BaseEndpoint: aws.String(strings.TrimRight(endpoint, "/")),
			UsePathStyle: true,
			HTTPClient:   cfg.HTTPClient,
			// Checksums only when an operation needs one: the upload's
			// declared SHA-256 is set explicitly on the presigned PUT.
			RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
			ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		}
	}
	return &Store{
		bucket:  cfg.Bucket,
		client:  s3.New(opts(cfg.Endpoint)),
		presign: s3.NewPresignClient(s3.New(opts(cfg.PublicEndpoint))),
	}, nil
}

// EnsureBucket creates the bucket unless it exists.
func (s *Store) EnsureBucket(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}); err == nil {
		return nil
	}
	_, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.bucket})
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("creating bucket %s: %w", s.bucket, err)
	}
	return nil
}

// AllowBrowsers sets the bucket's CORS rule so that web pages of origins
// (or any origin, "*") may PUT to presigned upload URLs with the signed
// headers and GET presigned downloads, reading the ETag of an upload.
// The presigned URL is the whole authorisation (no cookies are
// involved), so the rule grants a page nothing its URL does not.
func (s *Store) AllowBrowsers(ctx context.Context, origins []string) error {
	_, err := s.client.PutBucketCors(ctx, &s3.PutBucketCorsInput{
		Bucket: &s.bucket,
		CORSConfiguration: &types.CORSConfiguration{CORSRules: []types.CORSRule{{
			AllowedOrigins: origins,
			AllowedMethods: []string{http.MethodPut, http.MethodGet, http.MethodHead},
			AllowedHeaders: []string{"*"},
			ExposeHeaders:  []string{"ETag"},
			MaxAgeSeconds:  aws.Int32(3600),
		}}},
	})
	if err != nil {
		return fmt.Errorf("setting the CORS rule of bucket %s: %w", s.bucket, err)
	}
	return nil
}

// PresignPut presigns the upload of one object: its size, media type,
// SHA-256 (x-amz-checksum-sha256, which the store checks against the
// bytes) and owner metadata are signed, so a PUT with any other is
// refused by the store.
func (s *Store) PresignPut(ctx context.Context, p files.PutRequest) (files.Upload, error) {
	sum, err := files.SHA256Base64(p.SHA256)
	if err != nil {
		return files.Upload{}, err
	}
	req, err := s.presign.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket:         &s.bucket,
		Key:            &p.Key,
		ContentLength:  aws.Int64(int64(p.Size)),
		ContentType:    &p.ContentType,
		ChecksumSHA256: &sum,
		Metadata:       map[string]string{files.MetaOwner: p.Owner, files.MetaSHA256: p.SHA256, files.MetaName: url.PathEscape(p.Name)},
	}, s3.WithPresignExpires(p.TTL))
	if err != nil {
		return files.Upload{}, fmt.Errorf("presigning PUT %s: %w", p.Key, err)
	}
	headers := make(map[string]string, len(req.SignedHeader))
	for k, v := range req.SignedHeader {
		if strings.EqualFold(k, "Host") {
			continue // the URL's
		}
		headers[http.CanonicalHeaderKey(k)] = strings.Join(v, ",")
	}
	headers["Content-Length"] = strconv.FormatUint(p.Size, 10)
	return files.Upload{Key: p.Key, URL: req.URL, Headers: headers, ExpiresAt: time.Now().Add(p.TTL).UTC()}, nil
}

// PresignGet presigns a download of key valid for ttl, which the store
// answers with Content-Disposition naming the file name and with
// contentType.
func (s *Store) PresignGet(ctx context.Context, key, name, contentType string, ttl time.Duration) (string, error) {
	disposition := mime.FormatMediaType("attachment", map[string]string{"filename": name})
	if disposition == "" {
		disposition = "attachment"
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{
		Bucket: &s.bucket, Key: &key,
		ResponseContentDisposition: &disposition,
		ResponseContentType:        &contentType,
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("presigning GET %s: %w", key, err)
	}
	return req.URL, nil
}

// Head returns what the store says of key, or an error wrapping
// files.ErrNotFound.
func (s *Store) Head(ctx context.Context, key string) (files.Object, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key, ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		return files.Object{}, fmt.Errorf("HEAD %s: %w", key, translate(err))
	}
	o := files.Object{
		Size:        uint64(aws.ToInt64(out.ContentLength)),
		ContentType: aws.ToString(out.ContentType),
		Owner:       out.Metadata[files.MetaOwner],
		SHA256:      out.Metadata[files.MetaSHA256],
	}
	if name, err := url.PathUnescape(out.Metadata[files.MetaName]); err == nil {
		o.Name = name
	}
	if out.LastModified != nil {
		o.LastModified = out.LastModified.UTC()
	}
	if sum := aws.ToString(out.ChecksumSHA256); sum != "" {
		// The store's own checksum, computed from the bytes, wins over
		// the declared one.
		if h, err := files.SHA256Hex(sum); err == nil {
			o.SHA256 = h
		}
	}
	return o, nil
}

// Put stores a small object (a marker, a thumbnail).
func (s *Store) Put(ctx context.Context, key, contentType string, body []byte) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.bucket, Key: &key, ContentType: &contentType,
		ContentLength: aws.Int64(int64(len(body))), Body: bytes.NewReader(body),
	})
	if err != nil {
		return fmt.Errorf("PUT %s: %w", key, translate(err))
	}
	return nil
}

// Get reads a whole object of at most limit bytes.
func (s *Store) Get(ctx context.Context, key string, limit int64) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", key, translate(err))
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", key, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", key, limit)
	}
	return b, nil
}

// Delete deletes key; deleting a missing object is no error.
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil && !errors.Is(translate(err), files.ErrNotFound) {
		return fmt.Errorf("DELETE %s: %w", key, err)
	}
	return nil
}

// List calls fn with each object under prefix and when it was last
// modified, in key order, until fn returns an error.
func (s *Store) List(ctx context.Context, prefix string, fn func(key string, modified time.Time) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing %s: %w", prefix, translate(err))
		}
		for _, o := range page.Contents {
			if err := fn(aws.ToString(o.Key), aws.ToTime(o.LastModified)); err != nil {
				return err
			}
		}
	}
	return nil
}

// translate maps the service's not-found answers to files.ErrNotFound.
func translate(err error) error {
	var nk *types.NoSuchKey
	var nf *types.NotFound
	var api smithy.APIError
	switch {
	case errors.As(err, &nk), errors.As(err, &nf):
		return fmt.Errorf("%w: %w", files.ErrNotFound, err)
	case errors.As(err, &api) && (api.ErrorCode() == "NotFound" || api.ErrorCode() == "NoSuchKey"):
		return fmt.Errorf("%w: %w", files.ErrNotFound, err)
	}
	return err
}
