package sinks

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	grpcgzip "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// otlpExporter sends one export request and tells what became of it.
type otlpExporter interface {
	// export sends req, waiting at most until ctx ends.
	export(ctx context.Context, req plogotlp.ExportRequest) otlpResult
	close() error
}

// otlpResult is what an export attempt came to.
type otlpResult struct {
	// err is nil when the receiver took the request: rejected of its
	// records are then refused (a partial success), with msg saying why.
	err      error
	retry    bool          // err is worth another attempt (OTLP's retryable codes); otherwise it is for good
	throttle time.Duration // the receiver asked to wait this long first
	rejected int64
	msg      string
}

// The OTLP specification's retryable gRPC codes; RESOURCE_EXHAUSTED only
// when the receiver says when to retry (RetryInfo).
func grpcRetryable(st *status.Status) (bool, time.Duration) {
	switch st.Code() {
	case codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.OutOfRange, codes.Unavailable, codes.DataLoss:
		return true, retryInfo(st)
	case codes.ResourceExhausted:
		d := retryInfo(st)
		return d > 0, d
	}
	return false, 0
}

func retryInfo(st *status.Status) time.Duration {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.RetryDelay != nil {
			return ri.RetryDelay.AsDuration()
		}
	}
	return 0
}

// grpcExporter exports over gRPC with the official client of the pdata
// package.
type grpcExporter struct {
	cc      *grpc.ClientConn
	client  plogotlp.GRPCClient
	md      metadata.MD
	callOps []grpc.CallOption
}

func newGRPCExporter(cfg OTLPConfig, tc *tls.Config) (*grpcExporter, error) {
	creds := insecure.NewCredentials()
	if tc != nil {
		creds = credentials.NewTLS(tc)
	}
	cc, err := grpc.NewClient(cfg.Target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: %w", cfg.Target, err)
	}
	e := &grpcExporter{cc: cc, client: plogotlp.NewGRPCClient(cc), md: metadata.New(cfg.Headers)}
	if cfg.Gzip {
		e.callOps = append(e.callOps, grpc.UseCompressor(grpcgzip.Name))
	}
	return e, nil
}

func (e *grpcExporter) export(ctx context.Context, req plogotlp.ExportRequest) otlpResult {
	if len(e.md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, e.md)
	}
	resp, err := e.client.Export(ctx, req, e.callOps...)
	if err != nil {
		st, _ := status.FromError(err)
		retry, throttle := grpcRetryable(st)
		return otlpResult{err: fmt.Errorf("grpc %s: %s", st.Code(), st.Message()), retry: retry, throttle: throttle}
	}
	ps := resp.PartialSuccess()
	return otlpResult{rejected: ps.RejectedLogRecords(), msg: ps.ErrorMessage()}
}

func (e *grpcExporter) close() error { return e.cc.Close() }

// httpExporter exports over HTTP/1.1 or HTTP/2 with binary protobuf, as
// OTLP/HTTP specifies.
type httpExporter struct {
	url     string
	client  *http.Client
	headers map[string]string
	gzip    bool
	buf     bytes.Buffer
	zw      *gzip.Writer
}

func newHTTPExporter(cfg OTLPConfig, tc *tls.Config) *httpExporter {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tc != nil {
		tr.TLSClientConfig = tc
	}
	tr.MaxIdleConnsPerHost = 4
	e := &httpExporter{url: cfg.Target, client: &http.Client{Transport: tr}, headers: cfg.Headers, gzip: cfg.Gzip}
	if cfg.Gzip {
		e.zw = gzip.NewWriter(&e.buf)
	}
	return e
}

func (e *httpExporter) export(ctx context.Context, req plogotlp.ExportRequest) otlpResult {
	body, err := req.MarshalProto()
	if err != nil {
		return otlpResult{err: fmt.Errorf("encoding the request: %w", err)}
	}
	if e.gzip {
		e.buf.Reset()
		e.zw.Reset(&e.buf)
		_, err := e.zw.Write(body)
		if cerr := e.zw.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return otlpResult{err: fmt.Errorf("compressing the request: %w", err)}
		}
		body = e.buf.Bytes()
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return otlpResult{err: err}
	}
	hr.Header.Set("Content-Type", "application/x-protobuf")
	if e.gzip {
		hr.Header.Set("Content-Encoding", "gzip")
	}
	for k, v := range e.headers {
		hr.Header.Set(k, v)
	}
	resp, err := e.client.Do(hr)
	if err != nil {
		return otlpResult{err: err, retry: true} // connection refused, reset, timeout
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return otlpResult{err: fmt.Errorf("reading the answer: %w", err), retry: true}
	}
	if resp.StatusCode == http.StatusOK {
		out := plogotlp.NewExportResponse()
		if len(b) > 0 && isProtobuf(resp.Header) {
			if err := out.UnmarshalProto(b); err != nil {
				// The receiver took the request; an answer we cannot read
				// says no records were refused.
				return otlpResult{}
			}
		}
		ps := out.PartialSuccess()
		return otlpResult{rejected: ps.RejectedLogRecords(), msg: ps.ErrorMessage()}
	}
	r := otlpResult{err: fmt.Errorf("http %d: %s", resp.StatusCode, httpMessage(resp.Header, b))}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		r.retry, r.throttle = true, retryAfter(resp.Header.Get("Retry-After"))
	}
	return r
}

func (e *httpExporter) close() error {
	e.client.CloseIdleConnections()
	return nil
}

func isProtobuf(h http.Header) bool {
	return strings.HasPrefix(h.Get("Content-Type"), "application/x-protobuf")
}

// httpMessage is the message of a google.rpc.Status answer, or the start
// of the answer as text.
func httpMessage(h http.Header, b []byte) string {
	if isProtobuf(h) {
		var st statuspb.Status
		if err := proto.Unmarshal(b, &st); err == nil && st.GetMessage() != "" {
			return st.GetMessage()
		}
	}
	s := strings.TrimSpace(string(b[:min(len(b), 200)]))
	if s == "" {
		return "no message"
	}
	return s
}

// retryAfter reads a Retry-After header given in seconds.
func retryAfter(v string) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 0
}
