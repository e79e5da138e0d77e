package audit

import (
	"fmt"
	"path/filepath"

	"github.com/m2mix/m2mix/dataset"
)

// ReadSplit reads one of our AV-MNIST Arrow files. mnist, when not nil, is
// the whole MNIST split the file's rows come from (pixels, rows x 784): the
// file's mnist_index column picks each row's source image from it.
func ReadSplit(path string, mnist []uint8) (*Split, error) {
	t, err := dataset.Read(path)
	if err != nil {
		return nil, err
	}
	cols := map[string]*dataset.Column{}
	for _, name := range []string{"label", "image", "audio", "mnist_index"} {
		c, err := t.Column(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		cols[name] = c
	}
	if cols["label"].Int64 == nil || cols["image"].Float32 == nil || cols["audio"].Uint8 == nil || cols["mnist_index"].Int64 == nil {
		return nil, fmt.Errorf("%s: label and mnist_index must be int64, image float32, audio uint8", path)
	}
	s := &Split{Name: filepath.Base(path), Label: cols["label"].Int64, Image: cols["image"].Float32, Audio: cols["audio"].Uint8}
	if mnist != nil {
		rows := len(mnist) / ImageSize
		pix := make([]uint8, 0, len(s.Label)*ImageSize)
		for _, i := range cols["mnist_index"].Int64 {
			if i < 0 || int(i) >= rows {
				return nil, fmt.Errorf("%s: mnist_index %d out of MNIST's %d rows", path, i, rows)
			}
			pix = append(pix, mnist[int(i)*ImageSize:(int(i)+1)*ImageSize]...)
		}
		s.MNIST = pix
	}
	return s, nil
}
