package alerttest

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"unicode/utf8"
)

// Message is one message an SMTPServer accepted, taken apart.
type Message struct {
	// From is the envelope sender (MAIL FROM).
	From string
	// To are the envelope recipients (RCPT TO), in order.
	To []string
	// Header is the message's header.
	Header mail.Header
	// Subject is the Subject header, RFC 2047 encoded words decoded.
	Subject string
	// Text and HTML are the first text/plain and text/html parts (the
	// message itself if it is not multipart), at any depth of nested
	// multipart parts, with their transfer encoding (quoted-printable or
	// base64) and charset (UTF-8, US-ASCII or ISO-8859-1) decoded and line
	// ends turned from CRLF into LF. Parts marked as attachments are left
	// out.
	Text, HTML string
	// PartTypes are the media types of the message's leaf parts (all parts
	// but multipart ones, attachments included) in order, e.g.
	// ["text/plain" "text/html"]; a single-part message has one.
	PartTypes []string
	// Raw is the message as received (DATA), with CRLF line ends.
	Raw []byte
	// TLS tells whether the message came over TLS (STARTTLS or implicit).
	TLS bool
	// User is the AUTH PLAIN username the client authenticated as; "" if
	// it did not.
	User string
	// Err says why the message could not be taken apart, if it could not;
	// what was parsed before the error is kept.
	Err error
}

// maxDepth bounds the nesting of multipart parts.
const maxDepth = 8

// parse fills Header, Subject, Text, HTML and PartTypes from Raw.
func (m *Message) parse() error {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		return fmt.Errorf("reading the header: %w", err)
	}
	m.Header = msg.Header
	if m.Subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return fmt.Errorf("decoding the subject: %w", err)
	}
	w := partWalker{m: m}
	return w.walk(textproto.MIMEHeader(msg.Header), msg.Body, 0)
}

// partWalker visits the parts of a message depth-first, in order.
type partWalker struct {
	m                  *Message
	haveText, haveHTML bool
}

// walk visits the entity with header h and body r: a multipart entity's
// parts one by one, else the entity itself as a leaf part.
func (w *partWalker) walk(h textproto.MIMEHeader, r io.Reader, depth int) error {
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain; charset=us-ascii" // RFC 2045, 5.2
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Errorf("content type %q: %w", ct, err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		if depth >= maxDepth {
			return fmt.Errorf("multipart parts nested deeper than %d", maxDepth)
		}
		boundary := params["boundary"]
		if boundary == "" {
			return fmt.Errorf("%s without a boundary", mediaType)
		}
		mr := multipart.NewReader(r, boundary)
		for {
			// NextRawPart: the transfer encoding is undone below, the same
			// way for parts and for a single-part message.
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading a %s part: %w", mediaType, err)
			}
			if err := w.walk(p.Header, p, depth+1); err != nil {
				return err
			}
		}
	}
	w.m.PartTypes = append(w.m.PartTypes, mediaType)
	isText, isHTML := mediaType == "text/plain" && !w.haveText, mediaType == "text/html" && !w.haveHTML
	if !isText && !isHTML {
		return nil
	}
	if d, _, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil && d == "attachment" {
		return nil
	}
	body, err := decodeBody(h.Get("Content-Transfer-Encoding"), params["charset"], r)
	if err != nil {
		return fmt.Errorf("%s part: %w", mediaType, err)
	}
	body = strings.ReplaceAll(body, "\r\n", "\n")
	if isText {
		w.m.Text, w.haveText = body, true
	} else {
		w.m.HTML, w.haveHTML = body, true
	}
	return nil
}

// decodeBody reads r, undoing the transfer encoding and the charset.
func decodeBody(encoding, charset string, r io.Reader) (string, error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "7bit", "8bit", "binary":
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r) // skips line ends
	default:
		return "", fmt.Errorf("unknown transfer encoding %q", encoding)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("decoding %s: %w", encoding, err)
	}
	switch strings.ToLower(charset) {
	case "", "utf-8", "us-ascii":
		if !utf8.Valid(b) {
			return "", fmt.Errorf("not valid %s", cmp.Or(charset, "us-ascii"))
		}
		return string(b), nil
	case "iso-8859-1", "latin1":
		rs := make([]rune, len(b))
		for i, c := range b {
			rs[i] = rune(c)
		}
		return string(rs), nil
	default:
		return "", fmt.Errorf("unsupported charset %q", charset)
	}
}
