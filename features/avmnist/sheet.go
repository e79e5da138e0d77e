package avmnist

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/features/spectrogram"
)

// Sheet layout, in pixels (the canvas uses 72 dpi, so 1 pt = 1 px).
const (
	perDigit  = 3   // samples shown per digit
	imgPx     = 84  // a 28x28 image drawn 3x
	specPx    = 112 // spectrograms at their own size
	labelPx   = 40
	gapPx     = 6
	chartPx   = 230
	titlePx   = 30
	rowPx     = specPx + gapPx
	sheetCols = labelPx + perDigit*(imgPx+gapPx) + 2*gapPx + perDigit*(specPx+gapPx)
)

// WriteSheet draws, for each digit, the first few training images (PCA
// reconstructions, each scaled by its own min and max) and their
// spectrograms, and below them the class counts of the three splits.
func WriteSheet(path string, train, validation, test *Split) error {
	height := titlePx + 10*rowPx + chartPx
	c := vgimg.NewWith(vgimg.UseWH(vg.Length(sheetCols), vg.Length(height)), vgimg.UseDPI(72))
	dc := draw.New(c)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	y := func(top int) vg.Length { return vg.Length(height - top) } // top-down pixels to vg
	style := func(size vg.Length) draw.TextStyle {
		return text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, size), Handler: plot.DefaultTextHandler}
	}
	dc.FillText(style(14), vg.Point{X: 8, Y: y(20)}, "AV-MNIST: PCA images and spectrograms of the first training samples of each digit")
	for d := 0; d < 10; d++ {
		top := titlePx + d*rowPx
		dc.FillText(style(18), vg.Point{X: 12, Y: y(top + specPx/2 + 6)}, fmt.Sprint(d))
		var rows []int
		for i := 0; i < train.Rows() && len(rows) < perDigit; i++ {
			if train.Label[i] == int64(d) {
				rows = append(rows, i)
			}
		}
		for k, i := range rows {
			x := labelPx + k*(imgPx+gapPx)
			it := top + (specPx-imgPx)/2
			c.DrawImage(vg.Rectangle{Min: vg.Point{X: vg.Length(x), Y: y(it + imgPx)}, Max: vg.Point{X: vg.Length(x + imgPx), Y: y(it)}},
				greyImage(train.Image[i*ImageSize:(i+1)*ImageSize]))
			sx := labelPx + perDigit*(imgPx+gapPx) + 2*gapPx + k*(specPx+gapPx)
			c.DrawImage(vg.Rectangle{Min: vg.Point{X: vg.Length(sx), Y: y(top + specPx)}, Max: vg.Point{X: vg.Length(sx + specPx), Y: y(top)}},
				specImage(train.Audio[i*AudioSize:(i+1)*AudioSize]))
		}
	}
	drawCounts(dc, style, vg.Length(chartPx-20), []*Split{train, validation, test})
	f, err := artifact.Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}

// drawCounts draws grouped bars of the class counts per split at the bottom.
func drawCounts(dc draw.Canvas, style func(vg.Length) draw.TextStyle, h vg.Length, splits []*Split) {
	names := []string{"train", "validation", "test"}
	colors := []color.Color{color.RGBA{40, 90, 160, 255}, color.RGBA{230, 140, 40, 255}, color.RGBA{90, 160, 70, 255}}
	var counts [3][10]int
	most := 1
	for s, sp := range splits {
		for _, l := range sp.Label {
			counts[s][l]++
			most = max(most, counts[s][l])
		}
	}
	base, barMax := vg.Length(40), h-70
	groupW := (dc.Max.X - 80) / 10
	barW := groupW / 4
	for d := 0; d < 10; d++ {
		gx := 60 + vg.Length(d)*groupW
		for s := 0; s < 3; s++ {
			bh := barMax * vg.Length(counts[s][d]) / vg.Length(most)
			x := gx + vg.Length(s)*barW
			dc.SetColor(colors[s])
			dc.Fill(vg.Rectangle{Min: vg.Point{X: x, Y: base}, Max: vg.Point{X: x + barW - 1, Y: base + bh}}.Path())
		}
		dc.FillText(style(11), vg.Point{X: gx + barW, Y: base - 14}, fmt.Sprint(d))
	}
	for s := 0; s < 3; s++ {
		x := 60 + vg.Length(s)*170
		dc.SetColor(colors[s])
		dc.Fill(vg.Rectangle{Min: vg.Point{X: x, Y: h - 10}, Max: vg.Point{X: x + 10, Y: h}}.Path())
		total := 0
		for _, v := range counts[s] {
			total += v
		}
		lo, hi := math.MaxInt, 0
		for _, v := range counts[s] {
			lo, hi = min(lo, v), max(hi, v)
		}
		dc.FillText(style(11), vg.Point{X: x + 14, Y: h - 9}, fmt.Sprintf("%s %d (per digit %d-%d)", names[s], total, lo, hi))
	}
	dc.FillText(style(11), vg.Point{X: 8, Y: 8}, "class counts per split (bar height relative to the largest)")
}

// greyImage scales a reconstructed image to 0..255 by its own range.
func greyImage(v []float32) image.Image {
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	img := image.NewGray(image.Rect(0, 0, ImageSide, ImageSide))
	for i, x := range v {
		g := uint8(0)
		if hi > lo {
			g = uint8(math.Round(float64((x - lo) / (hi - lo) * 255)))
		}
		img.Pix[i] = g
	}
	return img
}

func specImage(v []uint8) image.Image {
	img := image.NewGray(image.Rect(0, 0, spectrogram.Size, spectrogram.Size))
	copy(img.Pix, v)
	return img
}
