"""Making data: the built-in real/fake corpus (`build`: photos the system installs, the fakes made
from them, captions and reference answers) and content-aligned fakes of any pool (`regenerate`:
its photos through an autoencoder, wholly or in part). It sits above the model, whose generator and
codecs it uses; `unigendet.data` below only reads, decodes and writes images and records."""
