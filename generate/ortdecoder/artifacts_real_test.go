package ortdecoder

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/testenv"
)

// TestArtifactsFolderMatchesHF builds real ortrain artifacts from each
// fixture (internal/artifacts.Build with the Optimum generation graphs) and
// decodes through their parameter-input generation graphs with the folder's
// initial parameters: token for token HF generate's output.
func TestArtifactsFolderMatchesHF(t *testing.T) {
	env := openEnv(t)
	refs := loadFixtureRefs(t)
	for model, m := range refs.Models {
		src := testenv.Testdata(t, "models", model)
		out := t.TempDir()
		if _, err := artifacts.Build(artifacts.Config{
			Model: filepath.Join(src, FullModelFile), Out: out,
			Encoder: filepath.Join(src, EncoderFile), Decoder: filepath.Join(src, DecoderFile),
			DecoderWithPast: filepath.Join(src, DecoderWithPastFile), Version: "test",
		}); err != nil {
			t.Fatalf("%s: building artifacts: %v", model, err)
		}
		dm, err := OpenArtifactModel(env, out, Options{})
		if err != nil {
			t.Fatal(err)
		}
		base, err := generate.LoadConfig(src) // the HF model's own generation defaults
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(dm.Config.EOSTokenIDs) != fmt.Sprint(base.EOSTokenIDs) || dm.Config.DecoderStartTokenID != base.DecoderStartTokenID ||
			dm.Config.PadTokenID != base.PadTokenID || dm.VocabSize != 512 {
			t.Errorf("%s: artifact model config %+v (vocab %d), model folder %+v", model, dm.Config, dm.VocabSize, base)
		}
		for _, c := range m.Cases {
			cfg := base
			if err := cfg.ApplyJSON(c.Kwargs); err != nil {
				t.Fatal(err)
			}
			got, err := generate.Generate(context.Background(), dm, m.Sources[c.Batch], cfg)
			if err != nil {
				t.Fatalf("%s %s: %v", model, c.Name, err)
			}
			if fmt.Sprint(got.Sequences) != fmt.Sprint(c.Sequences) {
				t.Errorf("%s %s:\n got %v\nwant %v", model, c.Name, got.Sequences, c.Sequences)
			}
		}
		dm.Close()
	}
}
