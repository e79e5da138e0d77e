package model

// Accuracy is the fraction of predictions equal to the labels.
func Accuracy(pred, label []int64) float64 {
	if len(label) == 0 {
		return 0
	}
	ok := 0
	for i := range label {
		if pred[i] == label[i] {
			ok++
		}
	}
	return float64(ok) / float64(len(label))
}

// MacroF1 is the unweighted mean over classes of per-class F1, as
// scikit-learn's f1_score(average="macro"): classes that appear in neither
// labels nor predictions are left out, and a class with no true positives
// scores 0.
func MacroF1(pred, label []int64, classes int) float64 {
	tp := make([]int, classes)
	fp := make([]int, classes)
	fn := make([]int, classes)
	for i := range label {
		if pred[i] == label[i] {
			tp[label[i]]++
		} else {
			fp[pred[i]]++
			fn[label[i]]++
		}
	}
	sum, n := 0.0, 0
	for c := 0; c < classes; c++ {
		if tp[c]+fp[c]+fn[c] == 0 {
			continue
		}
		n++
		sum += 2 * float64(tp[c]) / float64(2*tp[c]+fp[c]+fn[c])
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}
