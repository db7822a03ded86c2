module rewritelab

go 1.22
