#!/bin/bash
# The MNIST audits of docs/audit-runs.md for runs/mnist-$1.pt (one thread; run ce and ice side by side).
# Usage: experiments/audit_mnist.sh ce && experiments/audit_mnist.sh ice
m=$1
export OMP_NUM_THREADS=1
A=".venv/bin/invaudit attack --model runs/mnist-$m.pt --data-dir ../shared/data --no-download --no-progress --out runs/audit/mnist-$m"
( time $A --method metamer --oracle runs/mnist-oracle.pt ) 
( time $A --method interpolate --oracle runs/mnist-oracle.pt --n 1000 )
( time $A --method probe )
