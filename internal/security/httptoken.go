package security

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
)

// HTTPTokensFile lists the HTTP API's tokens by their SHA-256, with each
// one's identity and role: what a coordinator's -http-tokens reads. It
// holds no secret.
const HTTPTokensFile = "http-tokens"

// HTTPTokenFile names an identity's HTTP API token, a secret: send it as
// 'Authorization: Bearer TOKEN', or open the dashboard at /?token=TOKEN.
func HTTPTokenFile(name string) string { return name + ".http-token" }

// usesHTTP reports whether the identity gets an HTTP API token: the
// people's identities do; coordinators serve the API and agents never
// call it.
func usesHTTP(r Role) bool {
	return r == RoleOperator || r == RoleSubmitter || r == RoleViewer
}

// httpTokens writes a token for each identity that calls the HTTP API,
// keeping the present one unless the identity is rotated, and then the
// coordinators' list of them. A rotated token stops working once the
// coordinators reread the list (within a second; no restart).
func (w *writer) httpTokens(ids []Identity, rotate []string) error {
	var b strings.Builder
	b.WriteString("# The HTTP API's tokens (asymptote secure init): NAME ROLE SHA256-of-the-token TEAM.\n")
	for _, id := range ids {
		if !usesHTTP(id.Role) {
			continue
		}
		file := HTTPTokenFile(id.Name)
		token := ""
		if data, err := os.ReadFile(w.path(file)); err == nil && !slices.Contains(rotate, id.Name) {
			token = strings.TrimSpace(string(data))
		}
		if len(token) < 32 {
			raw := make([]byte, 32)
			if _, err := rand.Read(raw); err != nil {
				return fmt.Errorf("secure init: %w", err)
			}
			token = hex.EncodeToString(raw)
			if err := w.file(file, []byte(token+"\n"), 0o600); err != nil {
				return err
			}
		}
		sum := sha256.Sum256([]byte(token))
		fmt.Fprintf(&b, "%s %s %s %s\n", id.Name, id.Role, hex.EncodeToString(sum[:]), id.Team)
	}
	return w.file(HTTPTokensFile, []byte(b.String()), 0o644)
}
