package porter

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

// porter.json holds NLTK's PorterStemmer().stem for every word longer than 3
// characters of the reference corpora (scripts/refs/metrics_refs.py).
func TestStemMatchesNLTK(t *testing.T) {
	b, err := os.ReadFile(testenv.Testdata(t, "metrics", "porter.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Stems map[string]string `json:"stems"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for w, want := range ref.Stems {
		if got := Stem(w); got != want {
			bad++
			if bad < 30 {
				t.Errorf("Stem(%q) = %q, want %q", w, got, want)
			}
		}
	}
	t.Logf("%d words compared, %d differ", len(ref.Stems), bad)
}
