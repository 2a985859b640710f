package report

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"strings"
	"unicode"
)

// Series is one curve: y over x (training steps).
type Series struct {
	Name string
	X, Y []float64
}

// Panel is one chart with its title and curves.
type Panel struct {
	Title  string
	Series []Series
}

var palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
}

var (
	white = color.RGBA{255, 255, 255, 255}
	black = color.RGBA{0, 0, 0, 255}
	grid  = color.RGBA{225, 225, 225, 255}
)

const (
	panelW, panelH = 640, 300
	marginL        = 70
	marginR        = 150
	marginT        = 28
	marginB        = 36
	scale          = 1 // font pixel size
)

type canvas struct{ img *image.RGBA }

func (c canvas) set(x, y int, col color.RGBA) {
	if image.Pt(x, y).In(c.img.Rect) {
		c.img.SetRGBA(x, y, col)
	}
}

// line draws a 2-pixel-wide segment (Bresenham).
func (c canvas) line(x0, y0, x1, y1 int, col color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		c.set(x0, y0, col)
		c.set(x0, y0+1, col)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func (c canvas) rect(x0, y0, x1, y1 int, col color.RGBA) {
	for x := x0; x <= x1; x++ {
		for y := y0; y <= y1; y++ {
			c.set(x, y, col)
		}
	}
}

// text draws s with its top-left corner at (x, y); returns the width.
func (c canvas) text(x, y int, s string, col color.RGBA) int {
	for i, r := range strings.ToLower(s) {
		g, ok := glyphs[r]
		if !ok {
			g = glyphs[unicode.ToLower('_')]
		}
		for row, line := range g {
			for colIdx, ch := range line {
				if ch == '#' {
					c.set(x+6*i+colIdx, y+row, col)
				}
			}
		}
	}
	return 6 * len(s)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func sign(x int) int {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// niceTicks returns about n round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ticks []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		ticks = append(ticks, v)
	}
	return ticks
}

func tickLabel(v float64) string {
	if v == 0 {
		return "0"
	}
	if math.Abs(v) >= 1e5 || math.Abs(v) < 1e-3 {
		return fmt.Sprintf("%.1e", v)
	}
	s := fmt.Sprintf("%.4f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func (c canvas) panel(top int, p Panel) {
	x0, y0 := marginL, top+marginT
	x1, y1 := panelW-marginR, top+panelH-marginB
	c.text(x0, top+8, p.Title, black)
	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range p.Series {
		for i := range s.X {
			if math.IsNaN(s.Y[i]) || math.IsInf(s.Y[i], 0) {
				continue
			}
			minX, maxX = math.Min(minX, s.X[i]), math.Max(maxX, s.X[i])
			minY, maxY = math.Min(minY, s.Y[i]), math.Max(maxY, s.Y[i])
		}
	}
	if math.IsInf(minX, 1) {
		c.text(x0+20, (y0+y1)/2, "no data", black)
		return
	}
	if maxX == minX {
		maxX = minX + 1
	}
	if maxY == minY {
		minY, maxY = minY-0.5, maxY+0.5
	}
	pad := (maxY - minY) * 0.05
	minY, maxY = minY-pad, maxY+pad
	px := func(x float64) int { return x0 + int(math.Round((x-minX)/(maxX-minX)*float64(x1-x0))) }
	py := func(y float64) int { return y1 - int(math.Round((y-minY)/(maxY-minY)*float64(y1-y0))) }
	for _, t := range niceTicks(minY, maxY, 5) {
		if t < minY || t > maxY {
			continue
		}
		y := py(t)
		for x := x0; x <= x1; x++ {
			c.set(x, y, grid)
		}
		lbl := tickLabel(t)
		c.text(x0-8-6*len(lbl), y-3, lbl, black)
	}
	for _, t := range niceTicks(minX, maxX, 6) {
		if t < minX || t > maxX {
			continue
		}
		x := px(t)
		c.line(x, y1, x, y1+4, black)
		lbl := tickLabel(t)
		c.text(x-3*len(lbl), y1+8, lbl, black)
	}
	c.text((x0+x1)/2-12, y1+20, "step", black)
	c.line(x0, y0, x0, y1, black)
	c.line(x0, y1, x1, y1, black)
	for i, s := range p.Series {
		col := palette[i%len(palette)]
		prevOK := false
		var px0, py0 int
		for j := range s.X {
			if math.IsNaN(s.Y[j]) || math.IsInf(s.Y[j], 0) {
				prevOK = false
				continue
			}
			x, y := px(s.X[j]), py(s.Y[j])
			if prevOK {
				c.line(px0, py0, x, y, col)
			}
			if len(s.X) <= 60 {
				c.rect(x-2, y-2, x+2, y+2, col)
			}
			px0, py0, prevOK = x, y, true
		}
		ly := y0 + 4 + 14*i
		c.rect(x1+12, ly+1, x1+26, ly+5, col)
		c.text(x1+32, ly, s.Name, black)
	}
}

// PlotPNG draws the panels one under the other and returns the PNG bytes.
func PlotPNG(panels []Panel) ([]byte, error) {
	if len(panels) == 0 {
		return nil, fmt.Errorf("nothing to plot")
	}
	img := image.NewRGBA(image.Rect(0, 0, panelW, panelH*len(panels)))
	c := canvas{img}
	c.rect(0, 0, panelW-1, panelH*len(panels)-1, white)
	for i, p := range panels {
		c.panel(i*panelH, p)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
