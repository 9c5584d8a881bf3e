package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// ImportCounts count records by what an import did with them.
type ImportCounts struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Removed   int `json:"removed"`
}

// ImportResult is what an import did (or, in a dry run, would do).
type ImportResult struct {
	ImportCounts
	// Kinds splits the counts by record kind ("partner", "tenant", "role", ...).
	Kinds   map[string]ImportCounts `json:"kinds"`
	Batches int                     `json:"batches"`
	DryRun  bool                    `json:"dry_run"`
	// ZedToken sees the whole import when passed to WithConsistencyToken.
	ZedToken string `json:"zed_token"`
}

// ImportOption configures Import.
type ImportOption func(*importCall)

type importCall struct {
	query    url.Values
	importID string
}

// DryRun makes Import validate and count without writing.
func DryRun() ImportOption { return func(c *importCall) { c.query.Set("dry_run", "true") } }

// WithImportID names the import (it is sent as its X-Request-Id), so that
// ImportStatus can follow it while it runs.
func WithImportID(id string) ImportOption { return func(c *importCall) { c.importID = id } }

// ImportStatus is how far an import has come.
type ImportStatus struct {
	// Batches is the number of batches the import writes (0 until the first lands).
	Batches        int  `json:"batches"`
	BatchesWritten int  `json:"batches_written"`
	Done           bool `json:"done"`
}

// ImportStatus reads the progress of the import named importID (WithImportID).
func (c *Client) ImportStatus(ctx context.Context, importID string) (ImportStatus, error) {
	return get[ImportStatus](ctx, c, "/v1/import/status", url.Values{"import_id": {importID}})
}

// Import sends a record document (one JSON record a line, as Export writes)
// to POST /v1/import. A refused document answers an *Error whose Line is
// the first bad line. The document is streamed once and not retried; the
// call is bounded by ctx, not by WithTimeout, since an import may take minutes.
func (c *Client) Import(ctx context.Context, document io.Reader, opts ...ImportOption) (ImportResult, error) {
	ic := importCall{query: url.Values{}}
	for _, o := range opts {
		o(&ic)
	}
	resp, err := c.stream(ctx, http.MethodPost, "/v1/import", ic.query, document, "application/x-ndjson", ic.importID)
	if err != nil {
		return ImportResult{}, err
	}
	defer resp.Body.Close()
	var res ImportResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(&res); err != nil {
		return ImportResult{}, fmt.Errorf("authzd POST /v1/import: decode answer: %w", err)
	}
	return res, nil
}

// Export writes the provisioning state (one tenant's part with a non-empty
// tenantID) to w as a record document and returns the revision exported.
// Like Import it is bounded by ctx only.
func (c *Client) Export(ctx context.Context, w io.Writer, tenantID string) (string, error) {
	q := url.Values{}
	if tenantID != "" {
		q.Set("tenant_id", tenantID)
	}
	resp, err := c.stream(ctx, http.MethodGet, "/v1/export", q, nil, "", "")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return "", fmt.Errorf("authzd GET /v1/export: %w", err)
	}
	return resp.Header.Get("X-Zed-Token"), nil
}

// stream makes one request whose body or answer is a document, and returns
// the response of a 2xx answer (the caller closes its body).
func (c *Client) stream(ctx context.Context, method, path string, q url.Values, body io.Reader, contentType, requestID string) (*http.Response, error) {
	u := c.baseURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("authzd client: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("User-Agent", userAgent)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.actor != "" {
		req.Header.Set("X-Actor-User-Id", c.actor)
	}
	if requestID != "" {
		req.Header.Set("X-Request-Id", requestID)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("authzd: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		return nil, decodeError(resp, data)
	}
	return resp, nil
}
