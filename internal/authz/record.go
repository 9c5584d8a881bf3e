package authz

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Record kinds: one per provisioning PUT route, named for what it creates.
const (
	KindPartner      = "partner"
	KindSuperAdmin   = "super_admin"
	KindPartnerAdmin = "partner_admin"
	KindTenant       = "tenant"
	KindRole         = "role"
	KindMember       = "member"
	KindResource     = "resource"
)

// RecordKinds lists the kinds in the order an export writes them, each
// after the kinds its records refer to.
var RecordKinds = []string{KindPartner, KindSuperAdmin, KindPartnerAdmin, KindTenant, KindRole, KindMember, KindResource}

// Record operations, carried only where a decoder allows them (RecordRules.AllowOp).
const (
	OpPut    = "put"
	OpDelete = "delete"
)

// MaxRecordLine bounds one line of a record document, newline excluded.
const MaxRecordLine = 64 << 10

// Record is one provisioning fact as a line of a record document: the path
// parameters and body of the PUT route of its kind, validated alike.
type Record struct {
	// Line is the record's 1-based line in its document.
	Line int
	// Op is OpPut or OpDelete where the decoder allows it, else empty.
	Op   string
	Kind string

	PartnerID string // partner, partner_admin, tenant
	TenantID  string // tenant, role, member, resource
	RoleID    string // role, member
	// User is user_id: the super admin, partner admin or member.
	User Subject
	Name string // role
	// Keys are a role's module_permissions, sorted, without duplicates.
	Keys     []Key
	Resource Resource // resource
	Owner    Subject  // resource's owner_id
}

// RecordRules are what record validation needs beyond the id rules: the
// model's permission keys and resource types.
type RecordRules struct {
	// Key validates a permission key, naming field in its error. Nil accepts
	// any key ParseKey accepts.
	Key func(field, raw string) (Key, error)
	// ResourceTypes are the types a resource record may name.
	ResourceTypes []string
	// AllowOp makes "op" ("put" or "delete") a required field of every record;
	// without it "op" is an unknown field.
	AllowOp bool
}

// rawRecord is a line as written; pointers tell a field that is absent from
// one that is empty.
type rawRecord struct {
	Op                *string      `json:"op"`
	Kind              *string      `json:"kind"`
	PartnerID         *string      `json:"partner_id"`
	TenantID          *string      `json:"tenant_id"`
	RoleID            *string      `json:"role_id"`
	UserID            *string      `json:"user_id"`
	Name              *string      `json:"name"`
	ModulePermissions *[]string    `json:"module_permissions"`
	Resource          *rawResource `json:"resource"`
	OwnerID           *string      `json:"owner_id"`
}

type rawResource struct {
	Type *string `json:"type"`
	ID   *string `json:"id"`
}

// recordFields lists each kind's fields besides kind (and op): first those
// that name the object, then those only a put carries. The order is the
// order Record.MarshalJSON writes them in.
var recordFields = map[string]struct{ id, body []string }{
	KindPartner:      {id: []string{"partner_id"}},
	KindSuperAdmin:   {id: []string{"user_id"}},
	KindPartnerAdmin: {id: []string{"partner_id", "user_id"}},
	KindTenant:       {id: []string{"tenant_id"}, body: []string{"partner_id"}},
	KindRole:         {id: []string{"tenant_id", "role_id"}, body: []string{"name", "module_permissions"}},
	KindMember:       {id: []string{"tenant_id", "role_id", "user_id"}},
	KindResource:     {id: []string{"tenant_id", "resource"}, body: []string{"owner_id"}},
}

// present lists the fields a raw record carries besides op and kind.
func (r *rawRecord) present() []string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"partner_id", r.PartnerID != nil}, {"tenant_id", r.TenantID != nil}, {"role_id", r.RoleID != nil},
		{"user_id", r.UserID != nil}, {"name", r.Name != nil}, {"module_permissions", r.ModulePermissions != nil},
		{"resource", r.Resource != nil}, {"owner_id", r.OwnerID != nil},
	} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// RecordDecoder reads a record document: one JSON object a line, each
// decoded as strictly as the PUT route of its kind decodes its body.
type RecordDecoder struct {
	r     *bufio.Reader
	rules RecordRules
	line  int
}

// NewRecordDecoder reads records from r.
func NewRecordDecoder(r io.Reader, rules RecordRules) *RecordDecoder {
	return &RecordDecoder{r: bufio.NewReaderSize(r, 64<<10), rules: rules}
}

// Line is the line of the last record (or error) Next returned.
func (d *RecordDecoder) Line() int { return d.line }

// Next returns the next record, or io.EOF after the last. Blank lines are
// skipped. Any other error carries the line it is about (ErrorLine); the
// reader's own errors (e.g. a body over its cap) keep their code.
func (d *RecordDecoder) Next() (Record, error) {
	for {
		line, err := d.readLine()
		if err != nil {
			return Record{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		rec, err := d.decode(line)
		if err != nil {
			return Record{}, AtLine(d.line, err)
		}
		rec.Line = d.line
		return rec, nil
	}
}

// readLine returns the next line without its line ending, refusing one
// longer than MaxRecordLine.
func (d *RecordDecoder) readLine() ([]byte, error) {
	var buf []byte
	for {
		part, err := d.r.ReadSlice('\n')
		if len(buf)+len(part) > MaxRecordLine+2 { // the line ending may be "\r\n"
			d.line++
			d.skipLine(err)
			return nil, AtLine(d.line, Errorf(EINVALID, "line is over %d bytes", MaxRecordLine))
		}
		buf = append(buf, part...)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(buf) == 0 {
				return nil, io.EOF
			}
		case err != nil:
			return nil, err
		}
		d.line++
		buf = bytes.TrimSuffix(bytes.TrimSuffix(buf, []byte("\n")), []byte("\r"))
		if len(buf) > MaxRecordLine {
			return nil, AtLine(d.line, Errorf(EINVALID, "line is over %d bytes", MaxRecordLine))
		}
		return buf, nil
	}
}

// skipLine reads past the rest of an over-long line, so that a caller that
// goes on after the error starts at the next one.
func (d *RecordDecoder) skipLine(err error) {
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = d.r.ReadSlice('\n')
	}
}

func (d *RecordDecoder) decode(line []byte) (Record, error) {
	var raw rawRecord
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return Record{}, jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Record{}, Errorf(EINVALID, "data after the JSON object")
	}
	rec := Record{}
	if d.rules.AllowOp {
		if raw.Op == nil || (*raw.Op != OpPut && *raw.Op != OpDelete) {
			return rec, Errorf(EINVALID, "op is required: %q or %q", OpPut, OpDelete)
		}
		rec.Op = *raw.Op
	} else if raw.Op != nil {
		return rec, Errorf(EINVALID, "unknown field \"op\"")
	}
	if raw.Kind == nil || *raw.Kind == "" {
		return rec, Errorf(EINVALID, "kind is required (one of %s)", strings.Join(RecordKinds, ", "))
	}
	rec.Kind = *raw.Kind
	fields, ok := recordFields[rec.Kind]
	if !ok {
		return rec, Errorf(EINVALID, "unknown kind %q (known: %s)", truncate(rec.Kind), strings.Join(RecordKinds, ", "))
	}
	allowed := fields.id
	if rec.Op != OpDelete {
		allowed = append(slices.Clip(allowed), fields.body...)
	}
	for _, f := range raw.present() {
		if !slices.Contains(allowed, f) {
			if rec.Op == OpDelete && slices.Contains(fields.body, f) {
				return rec, Errorf(EINVALID, "field %q is not taken by a %s delete", f, rec.Kind)
			}
			return rec, Errorf(EINVALID, "field %q is not a field of kind %s (its fields: %s)", f, rec.Kind, strings.Join(append(slices.Clip(fields.id), fields.body...), ", "))
		}
	}
	return rec, d.validate(&rec, &raw)
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// validate fills rec from raw under the rules of the kind's PUT route.
func (d *RecordDecoder) validate(rec *Record, raw *rawRecord) error {
	put := rec.Op != OpDelete
	var err error
	switch rec.Kind {
	case KindPartner:
		rec.PartnerID = str(raw.PartnerID)
		return ValidateID("partner_id", rec.PartnerID)
	case KindSuperAdmin:
		rec.User, err = ParseSubject("user_id", str(raw.UserID))
		return err
	case KindPartnerAdmin:
		rec.PartnerID = str(raw.PartnerID)
		if err := ValidateID("partner_id", rec.PartnerID); err != nil {
			return err
		}
		rec.User, err = ParseSubject("user_id", str(raw.UserID))
		return err
	case KindTenant:
		rec.TenantID = str(raw.TenantID)
		if err := ValidateID("tenant_id", rec.TenantID); err != nil {
			return err
		}
		if !put {
			return nil
		}
		rec.PartnerID = str(raw.PartnerID)
		return ValidateID("partner_id", rec.PartnerID)
	case KindRole:
		if err := d.tenantScoped(rec, "role_id", str(raw.TenantID), str(raw.RoleID)); err != nil {
			return err
		}
		if IsBuiltinRole(rec.RoleID) {
			return Errorf(EINVALID, "role_id %q is a built-in role; its keys come from the module manifests and cannot be changed here", rec.RoleID)
		}
		if !put {
			return nil
		}
		return d.roleBody(rec, raw)
	case KindMember:
		if err := d.tenantScoped(rec, "role_id", str(raw.TenantID), str(raw.RoleID)); err != nil {
			return err
		}
		if IsPlatformRole(rec.RoleID) {
			return Errorf(EINVALID, "role_id %q is not a tenant role; use a %s or %s record", rec.RoleID, KindSuperAdmin, KindPartnerAdmin)
		}
		rec.User, err = ParseSubject("user_id", str(raw.UserID))
		return err
	case KindResource:
		if raw.Resource == nil {
			return Errorf(EINVALID, "resource is required: {\"type\", \"id\"}")
		}
		rec.Resource.Type = str(raw.Resource.Type)
		if rec.Resource.Type == "" {
			return Errorf(EINVALID, "resource.type is required")
		}
		if !slices.Contains(d.rules.ResourceTypes, rec.Resource.Type) {
			return UnknownResourceType(rec.Resource.Type, d.rules.ResourceTypes)
		}
		if err := d.tenantScoped(rec, "resource.id", str(raw.TenantID), str(raw.Resource.ID)); err != nil {
			return err
		}
		rec.Resource.ID, rec.RoleID = rec.RoleID, ""
		if !put {
			return nil
		}
		rec.Owner, err = ParseSubject("owner_id", str(raw.OwnerID))
		return err
	}
	return nil
}

// tenantScoped validates tenant_id and a tenant-local id (kept in RoleID
// until the caller moves it).
func (d *RecordDecoder) tenantScoped(rec *Record, field, tenantID, localID string) error {
	if err := ValidateID("tenant_id", tenantID); err != nil {
		return err
	}
	if err := ValidateID(field, localID); err != nil {
		return err
	}
	if _, err := ScopedID(field, tenantID, localID); err != nil {
		return err
	}
	rec.TenantID, rec.RoleID = tenantID, localID
	return nil
}

func (d *RecordDecoder) roleBody(rec *Record, raw *rawRecord) error {
	rec.Name = str(raw.Name)
	if rec.Name == "" || len(rec.Name) > 256 {
		return Errorf(EINVALID, "name is required (at most 256 bytes)")
	}
	if raw.ModulePermissions == nil {
		return Errorf(EINVALID, "module_permissions is required (it may be empty)")
	}
	rec.Keys = make([]Key, 0, len(*raw.ModulePermissions))
	for i, s := range *raw.ModulePermissions {
		field := "module_permissions[" + strconv.Itoa(i) + "]"
		var k Key
		var err error
		if d.rules.Key != nil {
			k, err = d.rules.Key(field, s)
		} else if k, err = ParseKey(s); err != nil {
			err = Errorf(EINVALID, "%s: %s", field, ErrorMessage(err))
		}
		if err != nil {
			return err
		}
		if !slices.Contains(rec.Keys, k) {
			rec.Keys = append(rec.Keys, k)
		}
	}
	slices.SortFunc(rec.Keys, func(a, b Key) int { return strings.Compare(a.s, b.s) })
	return nil
}

// jsonError turns encoding/json's error into a caller-safe one.
func jsonError(err error) error {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return Errorf(EINVALID, "not valid JSON (at byte %d)", syntax.Offset)
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return Errorf(EINVALID, "a record must be a JSON object")
	case errors.As(err, &typeErr):
		return Errorf(EINVALID, "field %q must be %s", typeErr.Field, typeErr.Type)
	// encoding/json has no typed error for unknown fields; its message is the only signal.
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return Errorf(EINVALID, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(EINVALID, "truncated JSON")
	default:
		return Errorf(EINVALID, "not a JSON object")
	}
}

// Identity names what the record is about, without what it says of it: two
// records with one identity are duplicates, and agree or conflict.
func (r Record) Identity() string {
	switch r.Kind {
	case KindPartner:
		return r.Kind + " " + r.PartnerID
	case KindSuperAdmin:
		return r.Kind + " " + r.User.String()
	case KindPartnerAdmin:
		return r.Kind + " " + r.PartnerID + " " + r.User.String()
	case KindTenant:
		return r.Kind + " " + r.TenantID
	case KindRole:
		return r.Kind + " " + r.TenantID + " " + r.RoleID
	case KindMember:
		return r.Kind + " " + r.TenantID + " " + r.RoleID + " " + r.User.String()
	case KindResource:
		return r.Kind + " " + r.TenantID + " " + r.Resource.Type + " " + r.Resource.ID
	}
	return r.Kind
}

// MarshalJSON writes the record as one line of a record document: op (when
// set), kind, then the kind's fields in a fixed order, so that equal records
// are equal bytes.
func (r Record) MarshalJSON() ([]byte, error) {
	return r.AppendJSON(nil), nil
}

// AppendJSON appends the record's JSON object (no newline) to b.
func (r Record) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	if r.Op != "" {
		b = append(b, `"op":`...)
		b = strconv.AppendQuote(b, r.Op)
		b = append(b, ',')
	}
	b = append(b, `"kind":`...)
	b = strconv.AppendQuote(b, r.Kind)
	f := recordFields[r.Kind]
	fields := f.id
	if r.Op != OpDelete {
		fields = append(slices.Clip(fields), f.body...)
	}
	for _, name := range fields {
		b = append(b, ',')
		b = strconv.AppendQuote(b, name)
		b = append(b, ':')
		switch name {
		case "partner_id":
			b = appendString(b, r.PartnerID)
		case "tenant_id":
			b = appendString(b, r.TenantID)
		case "role_id":
			b = appendString(b, r.RoleID)
		case "user_id":
			b = appendString(b, r.User.String())
		case "name":
			b = appendString(b, r.Name)
		case "module_permissions":
			b = append(b, '[')
			for i, k := range r.Keys {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, k.s)
			}
			b = append(b, ']')
		case "resource":
			b = append(b, `{"type":`...)
			b = appendString(b, r.Resource.Type)
			b = append(b, `,"id":`...)
			b = appendString(b, r.Resource.ID)
			b = append(b, '}')
		case "owner_id":
			b = appendString(b, r.Owner.String())
		}
	}
	return append(b, '}')
}

// appendString appends s as a JSON string. Ids, keys and kinds are ASCII
// without quotes or escapes; a role name may hold anything, so it goes
// through encoding/json.
func appendString(b []byte, s string) []byte {
	out, err := json.Marshal(s)
	if err != nil {
		return append(b, `""`...)
	}
	return append(b, out...)
}
