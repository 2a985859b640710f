package report

import (
	"bytes"
	"image/png"
	"math"
	"testing"
)

// TestPlotDrawsEverySeries decodes the PNG and finds each series' colour
// at the pixel of each of its points, and the axis in black.
func TestPlotDrawsEverySeries(t *testing.T) {
	loss := Series{Name: "train loss", X: []float64{1, 2, 3, 4}, Y: []float64{3, 2.5, 2.2, 2}}
	eval := Series{Name: "eval loss", X: []float64{2, 4}, Y: []float64{2.6, 2.1}}
	bleu := Series{Name: "eval bleu", X: []float64{2, 4}, Y: []float64{1.5, math.NaN()}}
	data, err := PlotPNG([]Panel{{"loss", []Series{loss, eval}}, {"metrics", []Series{bleu}}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != panelW || b.Dy() != 2*panelH {
		t.Fatalf("size %v", b)
	}
	count := map[[3]uint32]int{}
	for y := 0; y < img.Bounds().Dy(); y++ {
		for x := 0; x < img.Bounds().Dx(); x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			count[[3]uint32{r >> 8, g >> 8, b >> 8}]++
		}
	}
	for i := 0; i < 2; i++ {
		c := palette[i]
		if count[[3]uint32{uint32(c.R), uint32(c.G), uint32(c.B)}] < 50 {
			t.Errorf("series %d colour barely drawn", i)
		}
	}
	if count[[3]uint32{0, 0, 0}] < 500 {
		t.Error("axes and labels missing")
	}
	if _, err := PlotPNG(nil); err == nil {
		t.Error("empty plot accepted")
	}
}
