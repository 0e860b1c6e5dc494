"""PyTorch reference networks in the two checkpoint layouts keras_resnet converts.

Written from the layouts' definitions, not imported, so that the tests need only
torch: `TorchvisionResNet` has torchvision's module names and v1.5 bottleneck
(stride on the 3x3 conv); `AkamasterResNet` is akamaster/pytorch_resnet_cifar10's
CIFAR net, option A padding zero channels on both sides of the identity.
"""

import torch
from torch import nn
from torch.nn import functional as F


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inputs, planes, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample  # torchvision's name; without parameters for option A

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.downsample(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inputs, planes, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample  # torchvision's name; without parameters for option A

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        return F.relu(self.bn3(self.conv3(y)) + self.downsample(x))


class TorchvisionResNet(nn.Module):
    """torchvision.models.ResNet's layout: conv1, bn1, layer1..4 (downsample), fc."""

    def __init__(self, block, layers, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        inputs = 64
        for stage, blocks in enumerate(layers):
            planes = 64 * 2**stage
            modules = []
            for index in range(blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                outputs = planes * block.expansion
                downsample = nn.Identity()
                if stride != 1 or inputs != outputs:
                    downsample = nn.Sequential(
                        nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs)
                    )
                modules.append(block(inputs, planes, stride, downsample))
                inputs = outputs
            setattr(self, f"layer{stage + 1}", nn.Sequential(*modules))
        self.fc = nn.Linear(inputs, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 3, 2, 1)
        for stage in range(1, 5):
            x = getattr(self, f"layer{stage}")(x)
        return self.fc(x.mean((2, 3)))


class PadShortcut(nn.Module):
    """akamaster's option A: subsample, then zero channels before and after."""

    def __init__(self, planes):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class AkamasterResNet(nn.Module):
    """akamaster/pytorch_resnet_cifar10's ResNet: conv1, bn1, layer1..3, linear."""

    def __init__(self, n, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        inputs = 16
        for stage in range(3):
            planes = 16 * 2**stage
            modules = []
            for index in range(n):
                stride = 2 if stage > 0 and index == 0 else 1
                shortcut = PadShortcut(planes) if inputs != planes else nn.Identity()
                modules.append(BasicBlock(inputs, planes, stride, shortcut))
                inputs = planes
            setattr(self, f"layer{stage + 1}", nn.Sequential(*modules))
        self.linear = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for stage in range(1, 4):
            x = getattr(self, f"layer{stage}")(x)
        return self.linear(x.mean((2, 3)))


def randomize(module, seed=0):
    """Random batch-norm statistics, scales and offsets (conv weights stay He-initialised)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.BatchNorm2d):
                shape = layer.weight.shape
                layer.weight.copy_(0.5 + torch.rand(shape, generator=generator))
                layer.bias.copy_(0.1 * torch.randn(shape, generator=generator))
                layer.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
                layer.running_var.copy_(0.5 + torch.rand(shape, generator=generator))
    return module.eval()


def normalize(pixels):
    """torchvision's and akamaster's input: RGB / 255, per-channel mean and std, NCHW."""
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2) / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std
