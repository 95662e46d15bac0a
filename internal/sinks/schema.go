package sinks

import (
	"fmt"

	"github.com/cnbridged/cnbridged/internal/event"
	"github.com/cnbridged/cnbridged/internal/fields"
	"github.com/cnbridged/cnbridged/internal/schema"
)

// SchemaConfig is the key every sink that writes JSON objects has
// (stdout and NATS with format json, file, otlp): the schema of the
// objects, README "Schemas".
type SchemaConfig struct {
	// Schema is native, ecs or ocsf; left out (the zero Name), native.
	Schema schema.Name `mapstructure:"schema"`
}

// validateWith reports a schema on a sink whose format writes no JSON
// object (stdout text, NATS raw): why is the reason, in words.
func (c SchemaConfig) validateWith(jsonFormat bool, why string) error {
	if _, err := schema.Parse(string(c.Schema)); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if !jsonFormat && c.Schema != "" && c.Schema != schema.Native {
		return fmt.Errorf("schema: %s applies to JSON output only; %s", c.Schema, why)
	}
	return nil
}

// Body is what a JSON sink writes for each record: the native line or a
// schema's document.
type Body struct {
	Schema  schema.Name
	Product schema.Product // cnbridged's version: OCSF metadata.product.version, OTLP service.version
}

// bodyEncoder encodes records as Body says. It belongs to one sink's
// writing goroutine.
type bodyEncoder struct {
	enc  *event.Encoder
	body Body
	tc   event.TimeCache
	rec  fields.Record
}

func newBodyEncoder(enc *event.Encoder, b Body) *bodyEncoder {
	if b.Schema == "" {
		b.Schema = schema.Native
	}
	return &bodyEncoder{enc: enc, body: b}
}

// appendObject appends r as one JSON object, without a newline.
func (b *bodyEncoder) appendObject(dst []byte, r *event.Record) []byte {
	if b.body.Schema == schema.Native {
		dst = b.enc.AppendJSONCached(dst, r, &b.tc)
		return dst[:len(dst)-1]
	}
	b.enc.Fields(r, &b.rec)
	return b.appendFields(dst, r, &b.rec)
}

// appendFields is appendObject for a record whose field model rec the
// caller built (event.Encoder.Fields): a schema's document is written
// from rec, the native line from r.
func (b *bodyEncoder) appendFields(dst []byte, r *event.Record, rec *fields.Record) []byte {
	switch b.body.Schema {
	case schema.ECS:
		return schema.AppendECS(dst, rec)
	case schema.OCSF:
		return schema.AppendOCSF(dst, rec, b.body.Product)
	}
	dst = b.enc.AppendJSONCached(dst, r, &b.tc)
	return dst[:len(dst)-1]
}

// appendLine appends r as one JSON object and a newline.
func (b *bodyEncoder) appendLine(dst []byte, r *event.Record) []byte {
	if b.body.Schema == schema.Native {
		return b.enc.AppendJSONCached(dst, r, &b.tc)
	}
	return append(b.appendObject(dst, r), '\n')
}
