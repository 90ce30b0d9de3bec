package methods

import (
	"context"
	"testing"
)

func TestCatalog(t *testing.T) {
	names := Names()
	if len(names) == 0 {
		t.Fatal("no built-in methods")
	}
	for _, name := range names {
		m, ok := Lookup(name)
		if !ok {
			t.Fatalf("Lookup(%q) failed for a listed name", name)
		}
		info, err := m.Info(context.Background())
		if err != nil {
			t.Fatalf("%s: Info: %v", name, err)
		}
		if info.Name != name {
			t.Errorf("Lookup(%q) serves a method named %q", name, info.Name)
		}
	}
	if _, ok := Lookup("nosuch"); ok {
		t.Error("Lookup(nosuch) succeeded")
	}
}
