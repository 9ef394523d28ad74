# The onnxruntime-gpu wheel the GPU scripts carry and install (sourced by prepare.sh and install_ort.sh).
ORT_WHEEL=onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
ORT_WHEEL_SHA256=05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7
