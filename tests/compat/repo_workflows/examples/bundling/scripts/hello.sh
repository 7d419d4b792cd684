#!/bin/bash
echo "Hello from bundled script"
