# LibTorch as flowlik links it, for flowlik's own build and for a project that finds the installed
# package: the CPU library only. ${TORCH_LIBRARIES} would add libtorch_cuda and the CUDA libraries, which a
# CPU run then loads for nothing (0.25 s and 370 MB on a CUDA build of LibTorch); flowlik loads the CUDA
# backend at run time when a CUDA device is asked for (likelihood/model/device.h). Torch's `torch_cpu_library`
# links libtorch_cpu whole (--no-as-needed for that one library: its operators register themselves from
# static initialisers); the include directories and ABI flags are those of the `torch` target.
# Expects find_package(Torch) to have run.
if(NOT TARGET flowlik_torch_cpu)
  add_library(flowlik_torch_cpu INTERFACE IMPORTED)
  set_target_properties(flowlik_torch_cpu PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${TORCH_INCLUDE_DIRS}"
    INTERFACE_COMPILE_OPTIONS "$<TARGET_PROPERTY:torch,INTERFACE_COMPILE_OPTIONS>"
    INTERFACE_COMPILE_FEATURES cxx_std_20
    INTERFACE_LINK_LIBRARIES "torch_cpu_library;${CMAKE_DL_LIBS}")
endif()
